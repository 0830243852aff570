import sys

from condgen.cli import main

sys.exit(main())
