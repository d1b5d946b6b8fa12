"""Trust at plan time: strict schema patterns, signature requirements, ``insecure: true``, credentials.

- Every free-text value that reaches a command line or a file in an image has a pattern in
  config/schema.yaml; :func:`validator` makes an anchored pattern (``^…$``) match the whole value
  (Python's ``$`` also matches before a trailing newline, which would let ``http://m\\n`` through).
- :func:`check_image` refuses, before any job runs, an image whose packages are signed but that names no
  keyring (unless it says ``insecure: true``, which warns on every run and labels the image
  :data:`INSECURE_LABEL`); a bootstrap variant the bootstrapper does not know is :mod:`baseforge.preflight`'s.
- Every URL of the config (mirrors, ``options.mirror``/``security_mirror``/``url``/``apk``, URL keyrings)
  is held to one shape, so that its ``user:password@`` can always be found and kept out of command
  lines, logs and records (:func:`check_urls`); a keyring is never fetched over plain http; a refusal
  never shows a value that may hold a password (:mod:`baseforge.secret` hides them everywhere else).
- An app's ``context:`` and ``dockerfile:`` lie inside the workflow directory, its ``add:`` sources inside
  the context (:func:`check_inside`, :func:`check_add`); labels under ``io.baseforge.`` are baseforge's,
  in the config and in what a Dockerfile builds (:func:`check_built_labels`).
- The apt config of the tree an app's packages are installed on leaves every check on
  (:func:`check_apt_config`).
"""

from __future__ import annotations

import re
import sys
import tarfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema

from .errors import BaseforgeError

#: the label an image built with ``insecure: true`` carries in its OCI config
INSECURE_LABEL = "io.baseforge.insecure"
#: labels under this prefix are baseforge's own: a config cannot set (or fake) them
RESERVED_LABELS = "io.baseforge."
#: what a refused URL is told (never the URL itself: it may hold a password)
URL_HINT = ("scheme://[user:password@]host[:port]/path; inside a user name or password write : / @ # ? and % as "
            "%3A %2F %40 %23 %3F %25")


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


def shows_secret(value: Any) -> bool:
    """A config value a message must not quote: a URL with an ``@`` anywhere in it (a ``user:password@``
    that does not parse as one still holds the password), also inside a list or mapping."""
    text = str(value)
    return "://" in text and "@" in text


def check_url(url: str, where: str) -> None:
    """One URL of the config: its authority parses as ``[user:password@]host[:port]`` with exactly one place
    for credentials, so :func:`baseforge.secret.split_credentials` finds them all (``http://bob:pa/ss@m``
    would otherwise send ``bob:pa/ss`` to a command line and a log)."""
    scheme, _, rest = url.partition("://")
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    # the only "@" is the one that ends user:password (one in a path or after a "#" hides credentials); no
    # fragment: it means nothing to a mirror, and a "#" starts a comment in a sources line
    bad = rest.count("@") != authority.count("@") or authority.count("@") > 1 or "#" in rest
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:  # a port that is not a number: a ':' or '/' in a password, say
        parts, bad = None, True
    bad = bad or parts is None or (scheme in ("http", "https") and not parts.hostname)
    if bad:
        raise BaseforgeError(f"config {where}: is not a URL baseforge can read "
                             "(the value is not shown: it may hold a password)",
                             hint=URL_HINT)


def _config_urls(config: dict[str, Any]) -> list[tuple[str, str]]:
    """(config path, URL) of every URL in the config."""
    urls = [(f"mirrors.{k}", v) for k, v in (config.get("mirrors") or {}).items()]
    for name, spec in config.get("images", {}).items():
        opts = spec.get("options", {})
        urls += [(f"images.{name}.options.{k}", opts[k])
                 for k in ("mirror", "security_mirror", "url", "apk") if k in opts]
        urls += [(f"images.{name}.keyrings[{i}]", k) for i, k in enumerate(spec.get("keyrings", []))]
    return [(where, url) for where, url in urls if "://" in url]


def check_urls(config: dict[str, Any]) -> None:
    """Every URL of the config has one readable shape (:func:`check_url`); a keyring URL is https or file
    (a key fetched over plain http can be swapped on the way, which turns every signature check off)
    and has no credentials (a key is public; a URL with a password would travel on command lines)."""
    for where, url in _config_urls(config):
        check_url(url, where)
        if ".keyrings[" in where and url.startswith("http://"):
            raise BaseforgeError(f"config {where}: a keyring fetched over plain http can be replaced on the way, and "
                                 "then no signature check means anything",
                                 hint="use an https:// URL, or download the key and list the file")
        if ".keyrings[" in where and urlsplit(url).username is not None:
            raise BaseforgeError(f"config {where}: a keyring URL with user:password@ (the value is not shown)",
                                 hint="keys are public: download the key and list the file")


def check_sources(sources: Any, where: str) -> None:
    """The URL of every source of a release, also a mirror read from the host's apt sources: one shape,
    whatever its origin (:func:`check_url`)."""
    for src in sources:
        check_url(src.url, f"{where}: mirrors:, options.mirror or the host's apt sources)")


def check_registry(registry: dict[str, Any] | None) -> None:
    """``registry.tls_verify: false`` turns a check off: said on every run, as ``insecure: true`` is."""
    if registry and registry.get("tls_verify") is False:
        sys.stderr.write(f"baseforge: WARNING: registry.tls_verify is false: pushes to {registry['url']} are not "
                         "TLS-verified (anyone on the way can read or replace them)\n")


def check_labels(labels: dict[str, str], where: str) -> None:
    """A config's ``labels:`` stay out of baseforge's own namespace (``io.baseforge.insecure`` must mean what it
    says)."""
    for key in labels:
        if key.lower().startswith(RESERVED_LABELS):  # IO.Baseforge.insecure would read the same to a person
            raise BaseforgeError(f"config {where}: label {key!r} is in baseforge's own namespace ({RESERVED_LABELS}*)",
                                 hint="choose another label name; insecure: true sets io.baseforge.insecure itself")


def check_image(name: str, spec: dict[str, Any], preset: Any, bootstrapper: Any = None) -> None:
    """Plan-time checks of one image: keyrings, ``insecure: true``, labels, apk's binary and keys (its
    bootstrap variants: :func:`baseforge.preflight.check_bootstrap_variants`)."""
    where = f"images.{name}"
    check_labels(spec.get("labels", {}), f"{where}.labels")
    opts = spec.get("options", {})
    if "://" in opts.get("apk", "") and not opts.get("apk_sha256"):
        raise BaseforgeError(f"config {where}.options.apk_sha256: options.apk is a URL and nothing checks what it "
                             "serves (apk.static runs as root)", hint="add apk_sha256: <sha256sum of apk.static>")
    bname = getattr(bootstrapper, "name", "")
    for i, key in enumerate(spec.get("keyrings", [])):
        if "://" in key and not getattr(bootstrapper, "key_urls", True):
            raise BaseforgeError(f"config {where}.keyrings[{i}]: {bname} reads keyrings from files, not URLs",
                                 hint="download the key (over https), check its fingerprint, and list the file")
    if bname == "apk":
        for i, key in enumerate(spec.get("keyrings", [])):
            if not key.endswith(".pub"):  # apk copies them into the image's /etc/apk/keys
                raise BaseforgeError(f"config {where}.keyrings[{i}]: {key!r} is not an apk public key (*.pub)",
                                     hint="list the repository's *.rsa.pub keys: they are copied into the image's "
                                          "/etc/apk/keys")
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


def check_inside(value: str, top: Path, where: str, what: str) -> Path:
    """``top/value``, once seen to lie inside ``top`` (no absolute path, no ``..``, no symlink out of it)."""
    path = (top / value).resolve()
    if value.startswith("/") or ".." in value.split("/") or not path.is_relative_to(top.resolve()):
        leads = "" if value.startswith("/") else f" (it leads to {path})"
        raise BaseforgeError(f"config {where}: {value!r} is outside {what}{leads}",
                             hint=f"name a directory inside {what}, relative to it (no absolute path, no '..', no link "
                                  "out of it)")
    return path


def check_built_labels(config: dict[str, Any], meta: Any, where: str) -> None:
    """A Dockerfile app's built config carries exactly the ``io.baseforge.*`` labels baseforge gave it (from
    its base): a ``LABEL io.baseforge.insecure=false`` over an insecure base would hide what it is built on."""
    labels = config.get("config", {}).get("Labels") or {}
    got = {k: v for k, v in labels.items() if k.lower().startswith(RESERVED_LABELS)}
    want = {k: v for k, v in meta.labels.items() if k.startswith(RESERVED_LABELS)}
    if got != want:
        raise BaseforgeError(f"{where}: the Dockerfile sets labels in baseforge's own namespace ({RESERVED_LABELS}*): "
                             f"{', '.join(f'{k}={v}' for k, v in sorted(got.items()) if want.get(k) != v)}",
                             hint="remove those LABEL lines; insecure: true on the base sets io.baseforge.insecure "
                                  "itself")


def check_add(src: str, dest: str, context: Path, where: str) -> None:
    """An ``add:`` entry: the source lies inside the app's context, the destination is a plain image path."""
    if src.startswith("/") or ".." in src.split("/"):
        raise BaseforgeError(f"config {where}: source {src!r} is outside the context",
                             hint="name a file or directory of the context, relative to it (no absolute path, no '..')")
    if any(p in ("", ".", "..") for p in dest.strip("/").split("/")) or "//" in dest:
        raise BaseforgeError(f"config {where}.{src}: destination {dest!r} is not a plain path in the image "
                             "(an empty, '.' or '..' part)",
                             hint="give the absolute path in the image, e.g. /usr/local/bin/app")
    resolved = (context / src).resolve()
    if not resolved.is_relative_to(context.resolve()):
        raise BaseforgeError(f"config {where}: source {src!r} leads outside the context (through a symlink) to {resolved}",
                             hint="copy the file into the context instead of linking to it")


#: apt settings that turn a signature check off or swap what checks it (apt's option names are case-blind),
#: in the base tree an app installs its packages on: only ``insecure: true`` on the root image may
APT_UNCHECKED = re.compile(
    r"(trusted\s*[=:]\s*yes|AllowInsecureRepositories|AllowDowngradeToInsecureRepositories|AllowUnauthenticated"
    r"|AllowWeakRepositories|Dir::Etc::Trusted|Dir::Bin|gpgv|force-bad-verify)", re.IGNORECASE)
APT_CONFIG_DIRS = ("etc/apt/apt.conf", "etc/apt/apt.conf.d/", "etc/apt/sources.list", "etc/apt/sources.list.d/")


def check_apt_config(tree: Path, where: str) -> None:
    """The apt configuration of the tree tar ``tree`` (an app's flattened base) leaves every signature check
    on: apt in the chroot reads it after mmdebstrap's own settings, so a file an app added there
    (``[trusted=yes]``, ``APT::Get::AllowUnauthenticated``) would install the next app's packages unchecked."""
    with tarfile.open(tree) as tf:
        for m in tf:
            name = "/".join(p for p in m.name.split("/") if p not in ("", "."))
            if not (m.isreg() and name.startswith(APT_CONFIG_DIRS)):
                continue
            text = tf.extractfile(m).read().decode("utf-8", errors="replace")
            lines = [line.split("#", 1)[0] if not name.endswith(".conf") else line for line in text.splitlines()]
            hit = next((mt.group(0) for line in lines if (mt := APT_UNCHECKED.search(line))), None)
            if hit:
                raise BaseforgeError(f"{where}: the base's /{name} says {hit!r}, which turns apt's signature checks "
                                     "off for the packages installed on it",
                                     hint="remove that file from the app that adds it (only insecure: true on the root "
                                          "image turns the checks off, and labels the image so)")
