# Optional: push every image, and per (image, release, variant) a multi-arch index, to config's registry.


def push_targets():
    if not PLAN.registry:
        return []
    groups = sorted({f"{img.cell.image}/{img.cell.release}/{img.cell.variant}" for img in IMAGES.values()})
    return [f"build/push/{g}.json" for g in groups] + [f"build/push/apps/{a}.json" for a in DECLARATIVE]


def index_inputs(w):
    return [f"build/oci/{p}.oci.tar" for p, img in IMAGES.items()
            if (img.cell.image, img.cell.release, img.cell.variant) == (w.image, w.release, w.variant)]


rule index:
    input:
        archives=index_inputs,
        smoke=lambda w: [f"build/smoke/{p}.ok" for p in IMAGES if p.startswith(f"{w.image}/{w.release}/{w.variant}/")],
    output:
        archive="build/oci/{image}/{release}/{variant}.index.oci.tar",
    params:
        meta=lambda w: next(img.meta.to_dict() for img in IMAGES.values() if img.native and
                            (img.cell.image, img.cell.release, img.cell.variant) == (w.image, w.release, w.variant)),
        code=bfconfig.code_hash("oci.py"),
    log:
        "logs/index/{image}/{release}/{variant}.log",
    script:
        "../scripts/index.py"


rule push:
    input:
        archive="build/oci/{image}/{release}/{variant}.index.oci.tar",
    output:
        record="build/push/{image}/{release}/{variant}.json",
    params:
        registry=PLAN.registry,
        tags=lambda w: [t for img in IMAGES.values() if img.native and
                        (img.cell.image, img.cell.release, img.cell.variant) == (w.image, w.release, w.variant)
                        for t in img.meta.tags],
        code=bfconfig.code_hash("publish.py"),
    log:
        "logs/push/{image}/{release}/{variant}.log",
    script:
        "../scripts/push.py"


rule push_app:
    input:
        archive="build/apps/{app}.oci.tar",
        smoke="build/smoke/apps/{app}.ok",
    output:
        record="build/push/apps/{app}.json",
    params:
        registry=PLAN.registry,
        tags=lambda w: list(APPS[w.app].meta.tags),
        code=bfconfig.code_hash("publish.py"),
    log:
        "logs/push/apps/{app}.log",
    script:
        "../scripts/push.py"
