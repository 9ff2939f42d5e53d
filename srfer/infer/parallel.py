"""`srfer predict` over many photos (`srfer.accel.workers`): in one process, a photo per core in
flight on threads sharing its `Predictor`; with `--workers`, also in spawned processes, each
with a `Predictor` built like the caller's. Answers, streaming order and `--save-dir` names
are those of one photo at a time."""

from __future__ import annotations

from pathlib import Path

from srfer.accel.workers import chunked, in_flight, lanes_for, map_in_workers
from srfer.infer.options import PredictOptions, PredictWeights
from srfer.infer.predict import Predictor
from srfer.infer.results import PredictReport
from srfer.infer.routing import Routing

_worker: Predictor | None = None


def _start_worker(
    options: PredictOptions,
    device: str,
    weights: PredictWeights | None,
    gallery: Path | None,
    routing: Routing,
) -> None:
    global _worker
    _worker = Predictor(options, device, weights, gallery, routing)


def _run_chunk(chunk: tuple[list[Path], Path | None, list[str] | None]) -> tuple[PredictReport, dict]:
    assert _worker is not None
    for key in _worker.timings:
        _worker.timings[key] = 0.0
    paths, save_dir, stems = chunk
    return _worker.run(paths, save_dir, stems=stems), dict(_worker.timings)


def run_in_workers(
    predictor: Predictor, paths: list[Path], workers: int, save_dir: Path | None = None, progress=None,
    on_image=None,
) -> PredictReport:  # fmt: skip
    """`predictor.run(paths, …)` spread over `workers` processes (this one and workers − 1
    spawned with a predictor built like this one); `predictor.timings` receives every
    process's summed stage times."""
    if workers <= 1:
        return _run_in_threads(predictor, paths, save_dir, progress, on_image)
    stems = predictor.output_stems(paths, save_dir) if save_dir is not None else [None] * len(paths)
    pairs = list(zip(paths, stems, strict=True))
    chunks = [([p for p, _ in c], save_dir, [s for _, s in c] if save_dir else None)
              for c in chunked(pairs, workers, predictor.options.batch_size)]  # fmt: skip
    report = PredictReport()

    def collect(chunk, result) -> None:
        part, timings = result
        for key, seconds in timings.items():
            predictor.timings[key] += seconds
        _add(report, part, on_image)
        if progress is not None:
            progress(len(chunk[0]))

    def here(chunk) -> tuple[PredictReport, dict]:
        paths, save_dir, stems = chunk
        return predictor.run(paths, save_dir, stems=stems), {}  # its timings accumulate in place

    map_in_workers(_run_chunk, chunks, workers, _start_worker, (predictor.options, *predictor.build_args),
                   collect, here)  # fmt: skip
    return report


def _run_in_threads(predictor: Predictor, paths: list[Path], save_dir, progress, on_image) -> PredictReport:
    """One photo per lane (`lanes_for`), answers in input order."""
    lanes = lanes_for(predictor.device, len(paths))
    if lanes <= 1:
        return predictor.run(paths, save_dir, progress, on_image)
    stems = predictor.output_stems(paths, save_dir) if save_dir is not None else [None] * len(paths)
    report = PredictReport()

    def one(job: tuple[Path, str | None]) -> PredictReport:
        path, stem = job
        return predictor.run([path], save_dir, stems=[stem] if stem else None)

    for part in in_flight(one, list(zip(paths, stems, strict=True)), lanes):
        _add(report, part, on_image)
        if progress is not None:
            progress(1)
    return report


def _add(report: PredictReport, part: PredictReport, on_image) -> None:
    """A part's answers into the whole report, streamed as they come (in input order)."""
    report.failed.extend(part.failed)
    for image in part.images:
        report.images.append(image)
        if on_image is not None:
            on_image(image)
