from mmprep.cli import main

main()
