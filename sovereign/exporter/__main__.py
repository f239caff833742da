from sovereign.exporter.entry import main

main()
