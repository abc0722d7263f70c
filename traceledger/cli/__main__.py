"""``python -m traceledger.cli``: the same command line as the ``traceledger`` script."""

from traceledger.cli import main

if __name__ == "__main__":
    main()
