from sovereign.cli import main

main()
