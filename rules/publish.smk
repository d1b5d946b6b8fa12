# Optional: push every image, and per (image, release, variant) a multi-arch index, to config's registry.


rule index:
    input:
        archives=index_inputs,
        smoke=lambda w: [paths.cell(paths.SMOKE, p) for p in group(w)],
    output:
        archive=paths.group(paths.INDEX),
    log:
        "logs/index/{image}/{release}/{variant}.log",
    localrule: True
    params:
        meta=lambda w: next(IMAGES[p].meta.to_dict() for p in group(w) if IMAGES[p].native),
        code=code_hash("index"),
    script:
        "../scripts/index.py"


rule push:
    input:
        archive=paths.group(paths.INDEX),
        # per architecture, pushed beside its manifest as OCI referrers (baseforge.attest)
        oci=lambda w: [paths.cell(paths.OCI_INFO, p) for p in group(w)],
        sbom=lambda w: [paths.cell(paths.SBOM, p) for p in group(w)],
        provenance=lambda w: [paths.cell(paths.PROVENANCE, p) for p in group(w)],
    output:
        record=paths.group(paths.PUSH),
    log:
        "logs/push/{image}/{release}/{variant}.log",
    localrule: ENGINE_LOCAL
    params:
        registry=PLAN.registry,
        tags=lambda w: [t for p in group(w) if IMAGES[p].native for t in IMAGES[p].meta.tags],
        code=code_hash("push"),
    script:
        "../scripts/push.py"


rule push_app:
    input:
        unpack(app_attest_inputs),
        archive=paths.app(paths.APP_OCI),
        smoke=paths.app(paths.APP_SMOKE),
    output:
        record=paths.app(paths.APP_PUSH),
    log:
        "logs/push/apps/{app}.log",
    localrule: ENGINE_LOCAL
    params:
        registry=PLAN.registry,
        tags=lambda w: list(APPS[w.app].meta.tags),
        base_name=lambda w: APPS[w.app].meta.base_name if APPS[w.app].base else None,
        parameters=lambda w: {"app": w.app, "base": APPS[w.app].meta.base_name, "packages": list(APPS[w.app].packages)},
        epoch=lambda w: APPS[w.app].meta.created,
        code=code_hash("push"),
    script:
        "../scripts/push.py"
