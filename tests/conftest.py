import os
import sys

# Tests import their helpers as a plain module.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
