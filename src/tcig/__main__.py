import sys

from tcig.cli.main import main

sys.exit(main())
