import sys

from tests.reliability.harness import main

sys.exit(main(sys.argv[1:]))
