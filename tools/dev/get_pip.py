"""Offline stand-in for the get-pip.py script ansible-test downloads when it bootstraps a venv.

ansible-test runs ``get_pip_<version>.py <pip install args>`` inside a fresh virtual environment.
This network cannot reach the host it downloads from, so we bootstrap pip from the interpreter's
own ``ensurepip`` and then let that pip install what ansible-test asked for from the package index.
"""

import subprocess
import sys

GET_PIP_ONLY_OPTIONS = {"--no-setuptools", "--no-wheel"}


def main():
    subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"])
    args = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY_OPTIONS]
    return subprocess.call([sys.executable, "-m", "pip", "install", *args])


if __name__ == "__main__":
    sys.exit(main())
