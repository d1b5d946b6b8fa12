# Optional: push every image, and per (image, release, variant) a multi-arch index, to config's registry.


rule index:
    input:
        archives=index_inputs,
        smoke=lambda w: [paths.cell(paths.SMOKE, p) for p in group(w)],
    output:
        archive=paths.group(paths.INDEX),
    params:
        meta=lambda w: next(IMAGES[p].meta.to_dict() for p in group(w) if IMAGES[p].native),
        code=code_hash("index"),
    log:
        "logs/index/{image}/{release}/{variant}.log",
    localrule: True
    script:
        "../scripts/index.py"


rule push:
    input:
        archive=paths.group(paths.INDEX),
    output:
        record=paths.group(paths.PUSH),
    params:
        registry=PLAN.registry,
        tags=lambda w: [t for p in group(w) if IMAGES[p].native for t in IMAGES[p].meta.tags],
        code=code_hash("push"),
    log:
        "logs/push/{image}/{release}/{variant}.log",
    localrule: ENGINE_LOCAL
    script:
        "../scripts/push.py"


rule push_app:
    wildcard_constraints:
        app=alternation(DECLARATIVE),
    input:
        archive=paths.app(paths.APP_OCI),
        smoke=paths.app(paths.APP_SMOKE),
    output:
        record=paths.app(paths.APP_PUSH),
    params:
        registry=PLAN.registry,
        tags=lambda w: list(APPS[w.app].meta.tags),
        code=code_hash("push"),
    log:
        "logs/push/apps/{app}.log",
    localrule: ENGINE_LOCAL
    script:
        "../scripts/push.py"


rule push_built_app:
    input:
        engine=paths.app(paths.APP_ENGINE),
        smoke=paths.app(paths.APP_SMOKE),
    output:
        record=paths.app(paths.APP_PUSH),
    wildcard_constraints:
        app=alternation(DOCKERFILE),
    params:
        registry=PLAN.registry,
        tags=lambda w: list(APPS[w.app].meta.tags),
        code=code_hash("push"),
    log:
        "logs/push/apps/{app}.log",
    localrule: ENGINE_LOCAL
    script:
        "../scripts/push.py"
