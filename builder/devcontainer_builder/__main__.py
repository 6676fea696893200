from devcontainer_builder.cli import main

main()
