"""Trust at plan time: strict schema patterns, signature requirements, ``insecure: true``, credentials.

- Every free-text value that reaches a command line or a file in an image has a pattern in
  config/schema.yaml; :func:`validator` makes an anchored pattern (``^…$``) match the whole value
  (Python's ``$`` also matches before a trailing newline, which would let ``http://m\\n`` through).
- :func:`check_image` refuses, before any job runs, an image whose packages are signed but that names no
  keyring (unless it says ``insecure: true``, which warns on every run and labels the image
  :data:`INSECURE_LABEL`); a bootstrap variant the bootstrapper does not know is :mod:`baseforge.preflight`'s.
- Credentials in URLs are hidden by :mod:`baseforge.secret`.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import jsonschema

from .errors import BaseforgeError

#: the label an image built with ``insecure: true`` carries in its OCI config
INSECURE_LABEL = "io.baseforge.insecure"


def _pattern(validator, pattern: str, instance: Any, schema: dict) -> Any:
    """JSON Schema ``pattern``, with an anchored pattern held to the whole value (no trailing newline)."""
    if not isinstance(instance, str):
        return
    anchored = pattern.startswith("^") and pattern.endswith("$")
    if not (re.fullmatch(pattern, instance) if anchored else re.search(pattern, instance)):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


def validator(schema: dict) -> jsonschema.protocols.Validator:
    """A Draft 2020-12 validator for ``schema`` whose anchored patterns match whole values."""
    cls = jsonschema.validators.extend(jsonschema.Draft202012Validator, {"pattern": _pattern})
    return cls(schema)


def check_image(name: str, spec: dict[str, Any], preset: Any) -> None:
    """Plan-time checks of one image: keyrings, ``insecure: true`` (its bootstrap variants:
    :func:`baseforge.preflight.check_bootstrap_variants`)."""
    where = f"images.{name}"
    if spec.get("insecure"):
        # on stderr at parse time, so every run (also -n) shows it, whatever logging is set up
        sys.stderr.write(f"baseforge: WARNING: {where} has insecure: true: package signatures are NOT checked; "
                         f"the image is labelled {INSECURE_LABEL}=true\n")
        return
    hint = getattr(preset, "keyring_hint", "")
    if hint and not spec.get("keyrings") and not any(Path(k).is_file() for k in getattr(preset, "host_keyrings", ())):
        raise BaseforgeError(
            f"config {where}.keyrings: {preset.name} packages are signed and this image names no keyring to check them",
            hint=f"{hint} (insecure: true turns the check off, and labels the image so)")


def inherited_labels(base_meta: Any) -> dict[str, str]:
    """Labels an app must carry from its base (an image's or an app's meta): an app on an ``insecure: true``
    base, at any depth, is insecure too."""
    labels = base_meta.labels if base_meta is not None else {}
    return {INSECURE_LABEL: "true"} if labels.get(INSECURE_LABEL) == "true" else {}


def check_add(src: str, dest: str, context: Path, where: str) -> None:
    """An ``add:`` entry: the source lies inside the app's context, the destination is a plain image path."""
    if src.startswith("/") or ".." in src.split("/"):
        raise BaseforgeError(f"config {where}: source {src!r} is outside the context",
                             hint="name a file or directory of the context, relative to it (no absolute path, no '..')")
    if ".." in dest.split("/"):
        raise BaseforgeError(f"config {where}.{src}: destination {dest!r} has a '..' component",
                             hint="give the absolute path in the image, e.g. /usr/local/bin/app")
    resolved = (context / src).resolve()
    if not resolved.is_relative_to(context.resolve()):
        raise BaseforgeError(f"config {where}: source {src!r} leads outside the context (through a symlink) to {resolved}",
                             hint="copy the file into the context instead of linking to it")
