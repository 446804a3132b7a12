"""Choice of ONNX Runtime execution providers from the ORT_PROVIDERS and ORT_PROVIDER_FALLBACK settings.

select_providers is pure, so tests cover every case on a machine without a GPU.
configured_providers queries the installed ONNX Runtime. It imports onnxruntime only when
called, so the gunicorn master can import this module.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable

from webapp.settings import PROVIDER_FALLBACKS, StartupError

log = logging.getLogger(__name__)

CPU_PROVIDER = "CPUExecutionProvider"


@dataclass(frozen=True)
class ProviderChoice:
    """Execution providers for the session, and the requested ones this build lacks."""

    providers: tuple[str, ...]  # passed to InferenceSession, highest priority first
    unavailable: tuple[str, ...]  # requested but not available; empty unless the fallback is "cpu"


def select_providers(
    requested: Iterable[str], available: Iterable[str], fallback: str, known: Iterable[str] = ()
) -> ProviderChoice:
    """Choose the providers to pass to ONNX Runtime, in the requested order.

    `available` lists the providers this ONNX Runtime build can run, and `known` every
    provider name ONNX Runtime has, built in or not. Raises StartupError for names in
    neither list, and for requested providers that are not available when `fallback` is
    "fail". With fallback "cpu" they are left out. CPUExecutionProvider always comes
    last when it is available, because ONNX Runtime runs the nodes that the other
    providers do not support on the CPU.
    """
    if fallback not in PROVIDER_FALLBACKS:
        raise StartupError(
            f"ORT_PROVIDER_FALLBACK={fallback!r} is invalid; expected one of {', '.join(PROVIDER_FALLBACKS)}"
        )
    requested = tuple(dict.fromkeys(requested))  # drop repeats, keep the order
    available = tuple(available)
    if not requested:
        raise StartupError(f"ORT_PROVIDERS is empty; name at least one execution provider, e.g. {CPU_PROVIDER}")

    known_names = set(known) | set(available)
    unknown = [name for name in requested if name not in known_names]
    if unknown:
        hints = [hint for hint in (suggest_name(name, known_names) for name in unknown) if hint]
        raise StartupError(
            f"ORT_PROVIDERS names unknown execution providers: {', '.join(unknown)}"
            f"{' (did you mean ' + ', '.join(hints) + '?)' if hints else ''}; "
            f"this ONNX Runtime build has: {', '.join(available)}"
        )

    unavailable = tuple(name for name in requested if name not in available)
    if unavailable and fallback == "fail":
        raise StartupError(
            f"ORT_PROVIDERS requests {', '.join(unavailable)}, which this ONNX Runtime build does not have "
            f"(it has: {', '.join(available)}); install a build that has it (onnxruntime-gpu for "
            f"CUDAExecutionProvider) or set ORT_PROVIDER_FALLBACK=cpu to run on the CPU instead"
        )

    chosen = [name for name in requested if name in available]
    if CPU_PROVIDER in available and CPU_PROVIDER not in chosen:
        chosen.append(CPU_PROVIDER)
    return ProviderChoice(providers=tuple(chosen), unavailable=unavailable)


def suggest_name(name: str, known: Iterable[str]) -> str | None:
    """Return the known provider that `name` matches ignoring case, or with the suffix left off."""
    wanted = name.lower()
    for candidate in sorted(known):
        lowered = candidate.lower()
        if wanted in (lowered, lowered.removesuffix("executionprovider")):
            return candidate
    return None


@lru_cache(maxsize=None)
def configured_providers(requested: tuple[str, ...], fallback: str) -> tuple[str, ...]:
    """Return the providers for this process's sessions, logging once any requested ones that are missing."""
    import onnxruntime as ort

    choice = select_providers(requested, ort.get_available_providers(), fallback, ort.get_all_providers())
    if choice.unavailable:
        log.warning(
            "event=provider_fallback requested=%s unavailable=%s using=%s",
            ",".join(requested),
            ",".join(choice.unavailable),
            ",".join(choice.providers),
        )
    return choice.providers
