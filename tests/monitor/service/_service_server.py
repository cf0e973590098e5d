"""Run the service with fake bundles in its own process (for kill/restart tests).

    python _service_server.py PORT STATE_DIR TOKEN [MAX_UPLOAD_MB]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from service_testlib import FakeBundle  # noqa: E402

if __name__ == "__main__":
    import uvicorn

    from auscult.monitor.service import ServiceConfig, create_app

    port, state_dir, token = int(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    max_mb = float(sys.argv[4]) if len(sys.argv) > 4 else 20.0
    app = create_app(ServiceConfig(bundles=[FakeBundle(["pump-1", "fan-2"])], token=token, state_dir=state_dir,
                                   max_upload_mb=max_mb))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
