# Optional: push every image, and per (image, release, variant) a multi-arch index, to config's registry.


rule index:
    input:
        archives=index_inputs,
        smoke=lambda w: [f"build/smoke/{p}.ok" for p in group(w)],
    output:
        archive="build/oci/{image}/{release}/{variant}.index.oci.tar",
    params:
        meta=lambda w: next(IMAGES[p].meta.to_dict() for p in group(w) if IMAGES[p].native),
        code=bfconfig.code_hash("oci.py"),
    log:
        "logs/index/{image}/{release}/{variant}.log",
    script:
        "../scripts/index.py"


rule push:
    input:
        archive="build/oci/{image}/{release}/{variant}.index.oci.tar",
        # per architecture, pushed beside its manifest as OCI referrers (baseforge.attest)
        oci=lambda w: [f"build/oci/{p}.json" for p in group(w)],
        sbom=lambda w: [f"build/rootfs/{p}/sbom.spdx.json" for p in group(w)],
        provenance=lambda w: [f"build/rootfs/{p}/provenance.json" for p in group(w)],
    output:
        record="build/push/{image}/{release}/{variant}.json",
    params:
        registry=PLAN.registry,
        tags=lambda w: [t for p in group(w) if IMAGES[p].native for t in IMAGES[p].meta.tags],
        code=bfconfig.code_hash("publish.py", "sign.py", "attest.py"),
    log:
        "logs/push/{image}/{release}/{variant}.log",
    script:
        "../scripts/push.py"


rule push_app:
    input:
        unpack(app_attest_inputs),
        archive="build/apps/{app}.oci.tar",
        smoke="build/smoke/apps/{app}.ok",
    output:
        record="build/push/apps/{app}.json",
    params:
        registry=PLAN.registry,
        tags=lambda w: list(APPS[w.app].meta.tags),
        base_name=lambda w: APPS[w.app].meta.base_name if APPS[w.app].base else None,
        parameters=lambda w: {"app": w.app, "base": APPS[w.app].meta.base_name, "packages": list(APPS[w.app].packages)},
        epoch=lambda w: APPS[w.app].meta.created,
        code=bfconfig.code_hash("publish.py", "sign.py", "attest.py"),
    log:
        "logs/push/apps/{app}.log",
    script:
        "../scripts/push.py"
