"""Validate infra/k8s offline: every manifest against the Kubernetes API schemas.

Renders kustomization.yaml (its `resources` list and `namespace`, the only features it
uses) in Python, so no kustomize binary is needed; where `kubectl` or `kustomize` is on PATH
its rendering must list the same objects. The manifests kept outside the kustomization
(secret.example.yaml, migrate-job.yaml) are validated too. Each document is checked in
strict mode (unknown fields are errors) against the oldest Kubernetes version these
manifests support and the newest one kubernetes-validate bundles.

Run by `make lint`; tests/test_infra.py imports `render` and `standalone` from here.
Prints what it validated; exits 1 on any error.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parent
# preStop `sleep` (beta, on by default, since 1.30) is the newest field used here.
OLDEST_VERSION = "1.31.0"
CLUSTER_SCOPED = frozenset({"Namespace", "ClusterRole", "ClusterRoleBinding", "PriorityClass"})

Doc = dict[str, Any]


def load_documents(path: Path) -> list[Doc]:
    with path.open() as f:
        return [doc for doc in yaml.safe_load_all(f) if doc is not None]


def kustomization(root: Path = ROOT) -> Doc:
    loaded = yaml.safe_load((root / "kustomization.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def render(root: Path = ROOT) -> list[Doc]:
    """What `kustomize build` makes of this kustomization: the resources, namespaced."""
    spec = kustomization(root)
    namespace = spec.get("namespace")
    docs: list[Doc] = []
    for name in spec["resources"]:
        for doc in load_documents(root / name):
            if namespace and doc["kind"] not in CLUSTER_SCOPED:
                doc.setdefault("metadata", {})["namespace"] = namespace
            docs.append(doc)
    return docs


def standalone(root: Path = ROOT) -> dict[str, list[Doc]]:
    """The manifests beside the kustomization that it does not list, by file name."""
    listed = set(kustomization(root)["resources"]) | {"kustomization.yaml"}
    return {
        path.name: load_documents(path)
        for path in sorted(root.glob("*.yaml"))
        if path.name not in listed
    }


def versions() -> list[str]:
    latest = kubernetes_validate.latest_version()
    return [OLDEST_VERSION] if latest == OLDEST_VERSION else [OLDEST_VERSION, latest]


def validate(doc: Doc) -> list[str]:
    """Errors of one document, for every version checked (empty: valid)."""
    errors = []
    for version in versions():
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = "/".join(str(part) for part in exc.path) or "(document)"
            errors.append(f"Kubernetes {version}: {where}: {exc.message}")
        except (
            kubernetes_validate.SchemaNotFoundError,
            kubernetes_validate.InvalidSchemaError,
        ) as exc:
            errors.append(f"Kubernetes {version}: {exc.message}")
    return errors


def identity(doc: Doc) -> tuple[str, str, str, str]:
    meta = doc.get("metadata", {})
    name = meta.get("name") or meta.get("generateName", "")
    return (doc["apiVersion"], doc["kind"], meta.get("namespace", ""), name)


def kustomize_rendering(root: Path = ROOT) -> list[Doc] | None:
    """`kubectl kustomize` / `kustomize build` output, or None without either binary."""
    if kubectl := shutil.which("kubectl"):
        command = [kubectl, "kustomize", str(root)]
    elif kustomize := shutil.which("kustomize"):
        command = [kustomize, "build", str(root)]
    else:
        return None
    out = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc is not None]


def main() -> int:
    failures = 0
    checked = ", ".join(versions())
    sources = [("kustomization.yaml", render())]
    sources += list(standalone().items())
    for source, docs in sources:
        for doc in docs:
            api, kind, namespace, name = identity(doc)
            errors = validate(doc)
            failures += len(errors)
            where = f"{namespace}/{name}" if namespace else name
            print(f"{'FAIL' if errors else 'ok  '} {source}: {kind} {where} ({api})")
            for error in errors:
                print(f"       {error}")
    try:
        built = kustomize_rendering()
    except subprocess.CalledProcessError as exc:
        print(f"FAIL kustomize: {exc.stderr.strip()}")
        return 1
    if built is None:
        print("kustomize: no kubectl or kustomize on PATH; the Python rendering was validated")
    else:
        ours = sorted(identity(doc) for doc in render())
        theirs = sorted(identity(doc) for doc in built)
        if ours != theirs:
            print(f"FAIL kustomize renders {theirs}, the Python rendering {ours}")
            failures += 1
        else:
            print(f"ok   kustomize renders the same {len(theirs)} objects")
    total = len(render()) + sum(len(docs) for docs in standalone().values())
    if failures:
        print(f"{failures} error(s) in {total} documents (Kubernetes {checked})")
        return 1
    print(f"{total} documents valid against Kubernetes {checked} (strict)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
