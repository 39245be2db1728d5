import sys

from tcig.cli.entry import main

sys.exit(main())
