"""`python -m fakedetect predict ...`"""
import sys

from fakedetect.cli import main

sys.exit(main())
