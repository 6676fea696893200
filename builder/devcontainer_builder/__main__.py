from devcontainer_builder.launch import main

main()
