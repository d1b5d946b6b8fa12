# Application images: declarative ones (base + files + cmd) are written by the OCI writer on top of
# the base's archive and loaded; Dockerfile ones are built by the engine FROM our loaded base.


rule app_image:
    input:
        unpack(app_base_inputs),
        context=app_context,
    output:
        archive=paths.app(paths.APP_OCI),
        info=paths.app(paths.APP_INFO),
    wildcard_constraints:
        app=alternation(DECLARATIVE),
    params:
        app=lambda w: APPS[w.app].to_dict(),
        code=code_hash("app_image"),
    threads: 2  # the OCI writer's gzip, as rule image
    log:
        "logs/app/{app}.log",
    cache: "omit-software"
    script:
        "../scripts/app_image.py"


rule app_load:
    input:
        archive=paths.app(paths.APP_OCI),
        info=paths.app(paths.APP_INFO),
    output:
        record=paths.app(paths.APP_ENGINE),
    wildcard_constraints:
        app=alternation(DECLARATIVE),
    params:
        meta=lambda w: APPS[w.app].meta.to_dict(),
        method="oci",
        code=code_hash("load"),
    log:
        "logs/load/apps/{app}.log",
    localrule: ENGINE_LOCAL
    script:
        "../scripts/load.py"


rule app_build:
    input:
        unpack(app_base_inputs),
        context=app_context,
    output:
        record=paths.app(paths.APP_ENGINE),
    wildcard_constraints:
        app=alternation(DOCKERFILE),
    params:
        app=lambda w: APPS[w.app].to_dict(),
        code=code_hash("app_build"),
    log:
        "logs/app/{app}.log",
    localrule: ENGINE_LOCAL
    script:
        "../scripts/app_build.py"
