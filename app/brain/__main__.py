from brain.cli.main import main

main()
