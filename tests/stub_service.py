"""`fakedetect serve`'s app over a stand-in for the trained run, under uvicorn on a loopback port:
`python tests/stub_service.py PORT MAX_UPLOAD_BYTES`. Its "score" answers each file's size and
SHA-256, so a test sees exactly what the request handling kept of an upload, without a trained run."""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path


class StubService:
    def info(self) -> dict:
        return {"detectors": []}

    def score(self, paths: list[str], names: list[str], heatmap: bool = True) -> tuple[list[dict], dict]:
        rows = [{"path": name, "status": "ok", "size": Path(path).stat().st_size,
                 "sha256": hashlib.sha256(Path(path).read_bytes()).hexdigest()} for path, name in zip(paths, names)]
        return rows, {"score_s": 0.0}


if __name__ == "__main__":
    import uvicorn

    from fakedetect.serve.app import create_app

    port, cap = int(sys.argv[1]), int(sys.argv[2])
    uvicorn.run(create_app(StubService(), cap), host="127.0.0.1", port=port, log_level="warning", access_log=False)
