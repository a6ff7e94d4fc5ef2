from keen.cli.app import main

main()
