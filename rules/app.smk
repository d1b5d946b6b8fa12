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
        code=bfconfig.code_hash("app.py", "sandbox.py", "oci.py", "spec.py", "run.py"),
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
        code=bfconfig.code_hash("engine.py"),
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
        code=bfconfig.code_hash("app.py", "engine.py"),
    log:
        "logs/app/{app}.log",
    script:
        "../scripts/app_build.py"
