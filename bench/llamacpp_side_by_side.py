"""codeduel's `llamacpp` provider against llama.cpp's own tools, same GGUF, same GPU, one run.

    python bench/llamacpp_side_by_side.py --model PATH.gguf \
        --llama-bench BUILD/bin/llama-bench --batched-bench BUILD/bin/llama-batched-bench \
        [--seqs 164 256] [--prompt 200] [--answer 260] [--fa 0 1] [--rounds 3] [--out R.json]

Builds nothing: the two tools come from the user's llama.cpp build (ideally the one this
llama-cpp-python was built from, so both run the same kernels). Measured, in this order:

1. single stream, `llama-bench -p 0 -n 256` (tokens/s of generation from an empty context)
   against the provider's engine decoding 256 tokens of one sequence after a one-token prompt,
   with flash attention off and on;
2. batched, `llama-batched-bench -npp P -ntg A -npl N` (N sequences, each P random prompt
   tokens then A answer tokens) against the engine given the same N prompts of P random tokens
   and decoding exactly A tokens each. llama-batched-bench times the prompts (T_PP) and the
   answers (T_TG) apart; the engine overlaps them (continuous batching), so the fair figure
   is the whole job: answer tokens ÷ T (T_PP + T_TG for llama.cpp, wall time for the engine);
3. full greedy HumanEval through `codeduel run` in-process, after a warm-up round: wall time
   end to end (sandbox, generation, every answer's tests, the store) and pass@1.

The engine's sinks do the per-token work of a real call (each token's bytes, UTF-8 decoding)
but never stop a sequence early, as the tools' sequences do not.
"""

from __future__ import annotations

import argparse
import codecs
import json
import random
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from codeduel.models import GenerateConfig, Model, parse_model_spec
from codeduel.models.llamacpp import LlamaCppOptions, LlamaCppProvider, _Pieces


class Exactly:
    """A sink that takes each token as a real call does and ends after exactly `n`."""

    def __init__(self, pieces: _Pieces, n: int) -> None:
        self.pieces = pieces
        self.n = n
        self.seen = 0
        self.text = ""
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def push(self, token: int) -> bool:
        piece = self.pieces(token)
        if piece is not None:
            self.text += self._decoder.decode(piece)
        self.seen += 1
        return self.seen >= self.n


def tool(cmd: list[str]) -> list[dict[str, Any]]:
    """Run one of llama.cpp's tools with JSON-lines output; its records."""
    print("$ " + " ".join(cmd), flush=True)
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed ({done.returncode}): {done.stderr[-2000:]}")
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def provider(
    model: str, fa: bool, parallel: int | str, n_ctx: int, kv_unified: bool = False
) -> LlamaCppProvider:
    options = LlamaCppOptions.model_validate(
        {
            "flash_attn": fa,
            "parallel": parallel,
            "n_ctx": n_ctx,
            "n_gpu_layers": -1,
            "kv_unified": kv_unified,
        }
    )
    p = LlamaCppProvider(model, options)
    p.load()
    return p


def engine_job(p: LlamaCppProvider, prompts: list[list[int]], answer: int) -> dict[str, float]:
    """The prompts through the provider's engine, `answer` tokens each; the wall time."""
    engine, _ = p._engine_and_model()
    config = GenerateConfig(max_tokens=answer)
    sinks = [Exactly(p._pieces, answer) for _ in prompts]
    start = time.perf_counter()
    futures = [engine.submit(t, config, s) for t, s in zip(prompts, sinks, strict=True)]
    done = [f.result() for f in futures]
    wall = time.perf_counter() - start
    assert all(len(d.tokens) == answer for d in done)
    last_first = max(d.first_token for d in done if d.first_token is not None)
    return {"wall_s": wall, "all_started_s": last_first - start}


def single_stream(p: LlamaCppProvider, n: int, rounds: int) -> float:
    """Median tokens/s of one sequence decoding `n` tokens after a one-token prompt."""
    engine, llm = p._engine_and_model()
    rates = []
    for _ in range(rounds + 1):  # the first is a warm-up
        done = engine.submit(
            [llm.token_bos()], GenerateConfig(max_tokens=n), Exactly(p._pieces, n)
        ).result()
        assert done.first_token is not None
        rates.append((n - 1) / (done.ended - done.first_token))
    return statistics.median(rates[1:])


def bare_loop(p: LlamaCppProvider, n: int, rounds: int, seqs: int, greedy_chain: bool) -> float:
    """llama.cpp's own loop through llama-cpp-python's ctypes, as `llama-bench` runs tg: a
    fresh context of `seqs` sequences (one KV stream each), one token a call into sequence 0
    and `llama_synchronize`, no sampling; with `greedy_chain`, a greedy chain attached to
    every sequence as the engine's backend sampling does, and its token read. Median tokens/s
    over `rounds` (after a warm-up), so the engine's own overhead shows apart from the
    context's."""
    import ctypes

    import llama_cpp

    from codeduel.models._llama_batch import _greedy_chain

    assert p._llm is not None
    params = llama_cpp.llama_context_default_params()
    params.n_ctx = seqs * (n + 8)
    params.n_batch = params.n_ubatch = 512
    params.n_seq_max = seqs
    params.flash_attn_type = p._llm.context_params.flash_attn_type
    params.n_threads = params.n_threads_batch = p._llm.context_params.n_threads
    params.no_perf = True
    chains = [_greedy_chain() for _ in range(seqs)] if greedy_chain else []
    if chains:
        configs = (llama_cpp.llama_sampler_seq_config * seqs)(
            *(
                llama_cpp.llama_sampler_seq_config(i, ctypes.cast(c, ctypes.c_void_p))
                for i, c in enumerate(chains)
            )
        )
        params.samplers, params.n_samplers = configs, seqs
        params.n_outputs_max_per_seq = 1
    ctx = llama_cpp.llama_init_from_model(p._llm.model, params)
    memory = llama_cpp.llama_get_memory(ctx)
    batch = llama_cpp.llama_batch_init(1, 0, 1)
    token = p._llm.token_bos()
    rates = []
    for _ in range(rounds + 1):
        llama_cpp.llama_memory_seq_rm(memory, 0, -1, -1)
        start = time.perf_counter()
        for i in range(n):
            batch.token[0], batch.pos[0], batch.n_seq_id[0] = token, i, 1
            batch.seq_id[0][0], batch.logits[0], batch.n_tokens = 0, True, 1
            if llama_cpp.llama_decode(ctx, batch) != 0:
                raise SystemExit("llama_decode failed in the bare loop")
            if chains:
                token = llama_cpp.llama_get_sampled_token_ith(ctx, 0)
            llama_cpp.llama_synchronize(ctx)
        rates.append(n / (time.perf_counter() - start))
    llama_cpp.llama_batch_free(batch)
    llama_cpp.llama_free(ctx)
    for chain in chains:
        llama_cpp.llama_sampler_free(chain)
    return statistics.median(rates[1:])


def humaneval(p: LlamaCppProvider, model: str, rounds: int) -> list[dict[str, Any]]:
    from codeduel.runner import RunOptions, run_benchmark
    from codeduel.store import Store

    spec = parse_model_spec(f"llamacpp/{model}")
    base = GenerateConfig(max_tokens=768)
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "runs.db")
        for i in range(rounds + 1):  # round 0 warms up (sandbox, calibration, kernels)
            opts = RunOptions(
                benchmark="humaneval",
                models=(spec,),
                config=base,
                run_name=f"side-{i}",
                reuse_calls=False,
            )
            start = time.perf_counter()
            run = run_benchmark(store, opts, models=[Model(spec, p)])
            wall = time.perf_counter() - start
            rows = list(store.sample_rows(run.id))
            record = {
                "round": i,
                "wall_s": wall,
                "passed": sum(r["status"] == "passed" for r in rows),
                "samples": len(rows),
                "completion_tokens": sum(r["completion_tokens"] or 0 for r in rows),
                "slowest_call_s": max(r["generation_s"] for r in rows),
            }
            print(f"humaneval end to end: {json.dumps(record)}", flush=True)
            out.append(record)
        store.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="a GGUF file (or a bundled model's name)")
    ap.add_argument("--llama-bench", required=True)
    ap.add_argument("--batched-bench", required=True)
    ap.add_argument("--seqs", type=int, nargs="+", default=[164, 256])
    ap.add_argument("--prompt", type=int, default=200)
    ap.add_argument("--answer", type=int, default=260)
    ap.add_argument("--tg", type=int, default=256)
    ap.add_argument("--fa", type=int, nargs="+", default=[0, 1])
    ap.add_argument(
        "--single-engines",
        nargs="+",
        default=["auto"],
        help="engines for the single stream: slots (auto or N >= 2), ':unified' for one KV "
        "cache; the first is the headline figure",
    )
    ap.add_argument(
        "--bare", action="store_true", help="also time bare ctypes decode loops (bare_loop)"
    )
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-humaneval", action="store_true")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    path = str(Path(args.model).resolve()) if args.model.endswith(".gguf") else args.model
    report: dict[str, Any] = {"model": path, "single": {}, "batched": {}}

    for fa in args.fa:
        rows = tool(
            [
                args.llama_bench,
                "-m",
                path,
                "-ngl",
                "99",
                "-fa",
                str(fa),
                "-p",
                "0",
                "-n",
                str(args.tg),
                "-r",
                "5",
                "-o",
                "jsonl",
            ]
        )
        theirs = rows[0]["avg_ts"]
        if args.bare:
            p = provider(path, bool(fa), 1, 4096)
            for seqs, chain in ((1, False), (1, True), (256, False), (256, True)):
                rate = bare_loop(p, args.tg, args.rounds + 2, seqs, chain)
                key = f"fa{fa} bare seqs={seqs}" + (" greedy-chain" if chain else "")
                report["single"][key] = {"llama_bench_tg": theirs, "codeduel": rate}
                print(
                    f"single stream fa={fa}: llama-bench tg{args.tg} {theirs:.0f} tok/s, "
                    f"bare ctypes loop ({seqs} seqs{', greedy chain' if chain else ''}) "
                    f"{rate:.0f} tok/s, ratio {rate / theirs:.3f}",
                    flush=True,
                )
            p.close()
        for i, variant in enumerate(args.single_engines):
            slots, _, layout = variant.partition(":")
            parallel = slots if slots == "auto" else int(slots)
            p = provider(path, bool(fa), parallel, 4096, kv_unified=layout == "unified")
            ours = single_stream(p, args.tg, args.rounds + 2)
            key = f"fa{fa}" if i == 0 else f"fa{fa} {variant}"
            report["single"][key] = {
                "llama_bench_tg": theirs,
                "codeduel": ours,
                "ratio": ours / theirs,
                "slots": p.parallel,
                "kv_unified": layout == "unified",
            }
            p.close()
            print(
                f"single stream fa={fa}: llama-bench tg{args.tg} {theirs:.0f} tok/s, "
                f"codeduel ({variant}: {report['single'][key]['slots']} slots) {ours:.0f} "
                f"tok/s, ratio {ours / theirs:.3f}",
                flush=True,
            )

    fa = max(args.fa)
    ctx = args.prompt + args.answer + 8
    rng = random.Random(0)
    for n in args.seqs:
        rows = tool(
            [
                args.batched_bench,
                "-m",
                path,
                "-ngl",
                "99",
                "-fa",
                "on" if fa else "off",
                "-c",
                str(n * ctx),
                "-b",
                "2048",
                "-ub",
                "512",
                "-npp",
                str(args.prompt),
                "-ntg",
                str(args.answer),
                "-npl",
                str(n),
                "--output-format",
                "jsonl",
            ]
        )
        theirs = rows[0]
        p = provider(path, bool(fa), n, ctx)
        vocab = p._llm.n_vocab() if p._llm else 32000
        jobs = []
        for _ in range(args.rounds + 1):
            prompts = [
                [rng.randrange(1000, vocab - 1000) for _ in range(args.prompt)] for _ in range(n)
            ]
            jobs.append(engine_job(p, prompts, args.answer))
        p.close()
        wall = statistics.median(j["wall_s"] for j in jobs[1:])
        answers = n * args.answer
        record = {
            "llama_batched_bench": theirs,
            "codeduel_rounds": jobs[1:],
            "codeduel_wall_s": wall,
            "answer_tok_s_theirs": answers / theirs["t"],
            "answer_tok_s_ours": answers / wall,
            "ratio": theirs["t"] / wall,
        }
        report["batched"][str(n)] = record
        print(
            f"batched {n} x ({args.prompt} + {args.answer}): llama-batched-bench T "
            f"{theirs['t']:.2f} s (T_PP {theirs['t_pp']:.2f} + T_TG {theirs['t_tg']:.2f}, "
            f"S_TG {theirs['speed_tg']:.0f} tok/s), codeduel {wall:.2f} s; answer tok/s "
            f"{record['answer_tok_s_theirs']:.0f} vs {record['answer_tok_s_ours']:.0f}, "
            f"ratio {record['ratio']:.3f}",
            flush=True,
        )

    if not args.no_humaneval:
        p = provider(path, bool(fa), "auto", 4096)
        report["parallel"] = p.parallel
        report["humaneval"] = humaneval(p, path, args.rounds)
        p.close()
        walls = [r["wall_s"] for r in report["humaneval"][1:]]
        print(
            f"humaneval end to end after warm-up: median {statistics.median(walls):.2f} s "
            f"(parallel={report['parallel']})",
            flush=True,
        )
    if args.out:
        args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
