import sys

from fer_common.cli import main

sys.exit(main())
