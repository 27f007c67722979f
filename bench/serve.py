"""`fakedetect serve` on a trained run (`make repro`, or a copy of one: --project): the per-image
latency of POST /api/score after warm-up (heatmap off, one image per request), against `Detector.predict`'s per-image
time on the same files in this process (target: at most 1.2x), the Grad-CAM heatmap's own time
per image, the start-up time (process start until the server answers), and 50 sequential then
8 concurrent requests (every answer checked against predict's P(fake): counts), and the machine's
load average while it ran (the machine is shared: predict and serve are measured in the same run,
file by file). Prints `name: value` lines; `--smoke`: 3 images, one repeat, 5 and 2 requests."""
import argparse
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from serve_server import post_files, running_server  # noqa: E402

from fakedetect.predict import Detector  # noqa: E402

PROJECT = Path(__file__).resolve().parents[1]
SIZES = {"full": dict(images=24, warm_up=3, repeats=3, sequential=50, concurrent=8),  # the best repeat is reported
         "smoke": dict(images=3, warm_up=1, repeats=1, sequential=5, concurrent=2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--project", type=Path, default=PROJECT)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks that the bench runs")
    args = parser.parse_args()
    project, size = args.project.resolve(), SIZES["smoke" if args.smoke else "full"]
    found = sorted(p for p in (project / "data" / "demo" / "test").rglob("*") if p.suffix.lower() in (".png", ".jpg"))
    files = found[:: max(1, len(found) // size["images"])][:size["images"]]
    load_before = os.getloadavg()[0]
    uploads = [(f.name, f.read_bytes()) for f in files]

    started = time.perf_counter()
    with running_server(project) as url:
        print(f"serve_startup_s: {time.perf_counter() - started:.2f}")
        detector = Detector(project)  # while the server idles: the two never compute at once
        try:
            batch_size = detector.params.extract.batch_size
            expected = [p.row()["p_fake"] for p in detector.predict([str(f) for f in files], batch_size, 0)]
            for f, upload in zip(files[:size["warm_up"]], uploads):
                detector.predict([str(f)], batch_size, 0)
                post_files(url, [upload], "?heatmap=1")
            # One file at a time, predict then serve, so that both meet the same load on a shared machine.
            batched, single, served = [], [], []
            for _ in range(size["repeats"]):
                start = time.perf_counter()
                detector.predict([str(f) for f in files], batch_size, 0)
                batched.append((time.perf_counter() - start) / len(files))
                one, latencies = [], []
                for f, upload in zip(files, uploads):
                    start = time.perf_counter()
                    detector.predict([str(f)], batch_size, 0)
                    one.append(time.perf_counter() - start)
                    start = time.perf_counter()
                    post_files(url, [upload], "?heatmap=0")
                    latencies.append(time.perf_counter() - start)
                single.append(statistics.mean(one))
                served.append(latencies)
        finally:
            detector.close()
        batched, single = min(batched), min(single)
        latencies = min(served, key=statistics.mean)
        timings = [post_files(url, [upload], "?heatmap=1")[1]["timings"] for upload in uploads]

        def checked(i: int) -> str:
            try:
                status, body = post_files(url, [uploads[i % len(uploads)]], "?heatmap=0")
            except Exception:
                return "lost"
            ok = status == 200 and body["images"][0]["p_fake"] == expected[i % len(uploads)]
            return "correct" if ok else "wrong"

        sequential = [checked(i) for i in range(size["sequential"])]
        with ThreadPoolExecutor(size["concurrent"]) as pool:
            concurrent = list(pool.map(checked, range(size["concurrent"])))

    latency = statistics.mean(latencies)
    print(f"images: {len(files)}")
    print(f"serve_latency_per_image_s: {latency:.4f}")
    print(f"serve_latency_median_s: {statistics.median(latencies):.4f}")
    print(f"predict_per_image_batched_s: {batched:.4f}")
    print(f"predict_per_image_one_by_one_s: {single:.4f}")
    print(f"serve_vs_predict_batched_ratio: {latency / batched:.2f}")
    print(f"serve_vs_predict_one_by_one_ratio: {latency / single:.2f}")
    print(f"serve_scoring_in_server_per_image_s: {statistics.mean(t['score_s'] for t in timings):.4f}")
    print(f"heatmap_per_image_s: {statistics.mean(t['heatmap_s'] for t in timings):.4f}")
    for name, outcome in ((f"sequential_{len(sequential)}", sequential), (f"concurrent_{len(concurrent)}", concurrent)):
        for kind in ("correct", "wrong", "lost"):
            print(f"{name}_{kind}: {outcome.count(kind)}")
    print(f"load_average_1min_before: {load_before:.1f}")
    print(f"load_average_1min_after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
