# Application images: declarative ones (base + files + cmd) are written by the OCI writer on top of
# the base's archive and loaded; Dockerfile ones are built by the engine FROM our loaded base.


rule app_image:
    input:
        unpack(app_base_inputs),
        context=app_context,
    output:
        archive="build/apps/{app}.oci.tar",
        info="build/apps/{app}.json",
    wildcard_constraints:
        app=alternation(DECLARATIVE),
    params:
        app=lambda w: APPS[w.app].to_dict(),
        code=code_hash("app_image"),
    log:
        "logs/app/{app}.log",
    cache: "omit-software"
    script:
        "../scripts/app_image.py"


rule app_load:
    input:
        archive="build/apps/{app}.oci.tar",
        info="build/apps/{app}.json",
    output:
        record="build/engine/apps/{app}.json",
    wildcard_constraints:
        app=alternation(DECLARATIVE),
    params:
        meta=lambda w: APPS[w.app].meta.to_dict(),
        method="oci",
        code=code_hash("load"),
    log:
        "logs/load/apps/{app}.log",
    script:
        "../scripts/load.py"


rule app_build:
    input:
        unpack(app_base_inputs),
        context=app_context,
    output:
        record="build/engine/apps/{app}.json",
    wildcard_constraints:
        app=alternation(DOCKERFILE),
    params:
        app=lambda w: APPS[w.app].to_dict(),
        code=code_hash("app_build"),
    log:
        "logs/app/{app}.log",
    script:
        "../scripts/app_build.py"
