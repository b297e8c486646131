"""Run every ``kdrun`` command README.md (and the docs pages it hands its details to, ``DOCUMENTS``) shows, for
real, end to end, each as its own ``kdrun`` process.

The test suite proves in-process that every command README shows parses, composes and passes the checks the
CLI makes (``tests/test_readme.py``) and runs the headline few; running all of them belongs here, because
together they take minutes. Each command is shrunk to a smoke run the same way: ``debug=fast`` (one short
epoch per stage, no latency timing), its own run or sweep folder, one intra-op thread. Data that would be
downloaded is generated instead, tiny, in the real on-disk formats (CIFAR-100's pickles, MNIST's IDX files, an
ImageFolder tree), and README's example paths become real ones. A command README shows failing on purpose
must fail with its one line. One line per command, then a summary; exit status 1 if any failed:

    ok      14.2s  kdrun method=rkd teacher=resnet110 student=resnet20
    skip           kdrun -m hydra/launcher=submitit_slurm ...  (needs a Slurm cluster: sbatch not found)

    python scripts/check_readme.py                 # every command (about 10 minutes on 2 busy cores)
    python scripts/check_readme.py -k scheme=      # those containing a text
    python scripts/check_readme.py --list          # the commands and the arguments each runs with
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
# README and the pages its sections moved to: their commands are README's commands, checked alike.
DOCUMENTS = [README, REPO / "docs" / "guide.md", REPO / "docs" / "development.md"]
sys.path.insert(0, str(REPO))

# Commands README shows failing on purpose, with the start of the one line they must print.
EXPECTED_ERRORS = {"kdrun teacher=resnet110 student=resnet20 dataset=mnist1d":
                   "teacher=resnet110 needs image input but dataset mnist1d gives signals",
                   "kdrun teacher=nope": "teacher=nope is not valid (no such teacher); valid choices: bert, cnn1d"}
# Datasets kdrun would download: the tiny generated copies are not the published files (no checksums).
DOWNLOADED = {"cifar10": ["dataset.verify=false", "dataset.download=false"],
              "cifar100": ["dataset.verify=false", "dataset.download=false"]}
SMALL_BATCHES = ["trainer.batch_size=8", "trainer.num_workers=0"]  # the CIFAR recipe's 64 x resnet110 is slow on CPU


def readme_commands(text: str | None = None) -> list[str]:
    """``kdrun ...`` commands of README.md and ``DOCUMENTS`` (indented code lines and inline code), comments
    dropped, in order, once each; of ``text`` alone when given."""
    text = "\n".join(p.read_text() for p in DOCUMENTS) if text is None else text
    found = [ln.strip() for ln in text.splitlines() if re.match(r"    (\$ )?kdrun( |$)", ln)]
    found += [" ".join(m.split()) for m in re.findall(r"`(kdrun(?: [^`]*)?)`", text)]
    commands = [" ".join(shlex.split(c.removeprefix("$ "), comments=True)) for c in found]
    # a command's first argument is an override, a flag or "..." (not printed output such as "kdrun step: ...")
    commands = [c for c in commands if c == "kdrun" or re.match(r"kdrun (-|\.\.\.|\S*=)", c)]
    return list(dict.fromkeys(commands))


# Hub models README's online command names -> tiny local stand-ins with one shared vocabulary (checks only:
# the run itself needs the hub's data and is skipped offline, see skip_reason)
HUB_MODELS = ("textattack/bert-base-uncased-SST-2", "google/bert_uncased_L-4_H-256_A-4")


def hub_stand_in(folder: Path) -> str:
    """A tiny BERT classifier and its word-level tokenizer saved as a hub folder."""
    if not (folder / "config.json").exists():
        from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

        from kdrun.data.tokenize import SPECIALS, word_tokenizer

        vocab = (*SPECIALS, "a", "good", "bad", "film")
        PreTrainedTokenizerFast(tokenizer_object=word_tokenizer([], vocab, 0), pad_token="[PAD]", unk_token="[UNK]",
                                cls_token="[CLS]", sep_token="[SEP]").save_pretrained(folder)
        BertForSequenceClassification(BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2,
                                                 num_attention_heads=2, intermediate_size=64,
                                                 max_position_embeddings=128)).save_pretrained(folder)
    return str(folder)


def placeholders(tmp: Path) -> dict[str, str]:
    """README's example paths -> real ones: an image folder with two classes, a checkpoint file (empty: the
    checks only need it to exist; ``runnable_arguments`` makes a real one), the user's module ``mynets.py`` and
    ``arrays.npz`` (in the working folder, as README's commands expect them)."""
    for split in ("train", "val"):
        for c in ("a", "b"):
            (tmp / "mydata" / split / c).mkdir(parents=True, exist_ok=True)
    ckpt = tmp / "ckpt_epoch_240.pth"
    if not ckpt.exists():
        ckpt.write_bytes(b"")
    if not (tmp / "mynets.py").exists():  # README's own module: the example docs/ shows
        shutil.copy(REPO / "docs" / "examples" / "mynets.py", tmp / "mynets.py")
    if not (tmp / "arrays.npz").exists():  # README's arrays: 3 classes of 8x8 grey images
        import numpy as np

        rng = np.random.default_rng(0)
        x, y = rng.integers(0, 255, (48, 8, 8), dtype=np.uint8), np.arange(48) % 3
        np.savez(tmp / "arrays.npz", x_train=x[:32], y_train=y[:32], x_test=x[32:], y_test=y[32:])
    return {"/data/mydata": str(tmp / "mydata"), "/path/ckpt_epoch_240.pth": str(ckpt)}


def arguments(command: str, tmp: Path) -> list[str]:
    """The command's arguments, "..." dropped and example paths made real."""
    args = [a for a in shlex.split(command)[1:] if a != "..."]
    for old, new in placeholders(tmp).items():
        args = [a.replace(old, new) for a in args]
    for i, name in enumerate(HUB_MODELS):
        if any(a.endswith(f"={name}") for a in args):
            args = [a.replace(f"={name}", f"={hub_stand_in(tmp / f'hub{i}')}") for a in args]
    return args


def prints_and_stops(args: list[str]) -> bool:
    """``--help``, ``--cfg job``, ``--list``: nothing trains."""
    from kdrun.config.preflight import passes_through

    return passes_through(args) or args[:1] == ["--list"]


def _write_data(work: Path) -> None:
    """Tiny stand-ins for the downloaded datasets and README's example paths, under ``work``."""
    from PIL import Image

    sys.path.insert(0, str(REPO / "tests"))
    from test_data import write_mnist  # the IDX writer the data tests use

    from kdrun.runs.smoke import write_smoke_data

    placeholders(work)
    write_smoke_data(work / "data")  # cifar-100-python/ and an ImageFolder tree
    if not (work / "data" / "MNIST").exists():
        write_mnist(work / "data", n_train=32, n_test=16)
    for split in ("train", "val"):  # /data/mydata: two classes of 8x8 images
        for c in ("a", "b"):
            for i in range(4):
                Image.new("RGB", (8, 8), (60 * i, 120 if c == "a" else 0, 0)).save(work / "mydata" / split / c / f"{i}.png")


def _teacher_checkpoint(work: Path, arch: str, num_classes: int) -> None:
    """README's ``/path/ckpt_epoch_240.pth``: a reference-format checkpoint of the right architecture."""
    import torch

    from kdrun.models import create_model

    model = create_model(arch, num_classes=num_classes, in_channels=3, input_size=(32, 32))
    torch.save({"model": model.state_dict(), "epoch": 240}, work / "ckpt_epoch_240.pth")


def runnable_arguments(command: str, index: int, work: Path) -> list[str]:
    """The arguments ``command`` runs with here: a smoke run in its own folder on generated data."""
    from kdrun.cli import checked_arguments
    from kdrun.config.store import register_configs

    register_configs()  # what kdrun's main() does first
    args = arguments(command, work)
    if prints_and_stops(args) or command in EXPECTED_ERRORS:
        return args
    # the headline rule's note: the run itself prints it; the run's folder: README's relative paths (arrays.npz)
    with contextlib.redirect_stderr(io.StringIO()), contextlib.chdir(work):
        _, cfg = checked_arguments([*args, "debug=fast"])
    extra = ["debug=fast", "measure.enabled=false"]
    name = cfg.dataset._target_.rsplit("_", 1)[-1]  # kdrun.data.cifar.load_cifar100 -> cifar100
    extra += DOWNLOADED.get(name, [])
    if name in DOWNLOADED or name == "imagefolder":
        extra += SMALL_BATCHES
    if "teacher.checkpoint=" in command:
        _teacher_checkpoint(work, cfg.teacher.arch, 100)
    folder = "hydra.sweep.dir" if "-m" in args else "hydra.run.dir"
    return [*args, *extra, f"{folder}={work / 'runs' / str(index)}"]


def skip_reason(args: list[str]) -> str | None:
    if "dataset=sst2" in args:
        return "needs the Hugging Face hub: GLUE SST-2 and a fine-tuned BERT"
    if "hydra/launcher=submitit_slurm" in args and not shutil.which("sbatch"):
        return "needs a Slurm cluster: sbatch not found"
    return None


def run_one(command: str, args: list[str], work: Path, timeout: float) -> tuple[bool, str]:
    """Run ``kdrun <args>``; (passed, what to print after the command when it did not)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "KDRUN_DATA": str(work / "data"), "OMP_NUM_THREADS": "1"}
    try:
        proc = subprocess.run([sys.executable, "-m", "kdrun", *args], cwd=work, env=env, capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, f"timed out after {timeout:.0f} s"
    last = (proc.stderr.strip().splitlines() or [""])[-1]
    if command in EXPECTED_ERRORS:
        ok = proc.returncode == 2 and EXPECTED_ERRORS[command] in last and "Traceback" not in proc.stderr
        return ok, "" if ok else f"expected exit 2 with '{EXPECTED_ERRORS[command]}', got {proc.returncode}: {last}"
    ok = proc.returncode == 0 and "Traceback" not in proc.stderr
    return ok, "" if ok else f"exit {proc.returncode}: {last}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-k", default="", help="only the commands containing this text")
    parser.add_argument("--list", action="store_true", help="print each command and its arguments; run nothing")
    parser.add_argument("--work", type=Path, help="working folder (default: a new temporary one, removed after)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per command (default 900)")
    opts = parser.parse_args(argv)
    work = opts.work or Path(tempfile.mkdtemp(prefix="check_readme-"))
    work.mkdir(parents=True, exist_ok=True)
    commands = [c for c in readme_commands() if opts.k in c]
    if commands:
        _write_data(work)
    failed = skipped = 0
    start = time.time()
    for i, command in enumerate(commands):
        args = runnable_arguments(command, i, work)
        if opts.list:
            print(f"{command}\n    kdrun {shlex.join(args)}")
            continue
        reason = skip_reason(args)
        if reason:
            skipped += 1
            print(f"skip  {'':>7}  {command}  ({reason})", flush=True)
            continue
        t0 = time.time()
        ok, why = run_one(command, args, work, opts.timeout)
        failed += not ok
        print(f"{'ok' if ok else 'FAIL':<4}  {time.time() - t0:6.1f}s  {command}{'' if ok else '  -> ' + why}",
              flush=True)
    if not opts.list:
        print(f"{len(commands)} commands: {len(commands) - failed - skipped} ok, {failed} failed, {skipped} skipped "
              f"in {time.time() - start:.0f} s")
    if opts.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
