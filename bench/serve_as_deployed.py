"""uvicorn as the service is deployed: ``python -m bench.serve_as_deployed <uvicorn args>``.

The dev venv has pandas (for the client's ``get_dataframe``); requirements.txt does not, so
the deployed service never loads it. Here pyarrow would import it on its first conversion,
adding ~40 MB of RSS and ~0.3 s to the first read, so it is hidden as if not installed.
"""

from __future__ import annotations

import sys

from tests.fixtures.imports import NotInstalled

if __name__ == "__main__":
    sys.meta_path.insert(0, NotInstalled("pandas"))
    from uvicorn.main import main

    main()
