"""Browser tests of the built book (headless Chromium over ``_build/html``); run with ``-m browser``."""
