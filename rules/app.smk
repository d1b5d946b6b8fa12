# Application images: declarative ones (base + packages + files + cmd) are written by the OCI writer on top
# of the base's archive; Dockerfile ones are built by buildah FROM the base's archive. Both are loaded.


rule app_image:
    input:
        unpack(app_base_inputs),
        context=app_context,
    output:
        archive=paths.app(paths.APP_OCI),
        info=paths.app(paths.APP_INFO),
        sbom=report(
            paths.app(paths.APP_SBOM),
            caption="report/sbom.rst",
            category="2. SBOM and provenance",
            labels=lambda w: bfreport.document_labels(f"apps/{w.app}", "SBOM (SPDX 2.3)"),
        ),
    log:
        "logs/app/{app}.log",
    wildcard_constraints:
        app=alternation(DECLARATIVE),
    cache: "omit-software"
    threads: 2  # the OCI writer's gzip, as rule image
    params:
        app=lambda w: APPS[w.app].to_dict(),
        # packages: installed from the sources, keyrings, epoch and cache of the image at the chain's bottom
        root_cell=lambda w: IMAGES[APPS[w.app].root].cell.to_dict() if APPS[w.app].packages else None,
        # the closure of app_image's imports; an app without packages runs only baseforge.app's: pack's rules,
        # mmdebstrap and the package cache (baseforge.app_packages) do not count for it
        code=lambda w: code_hash("app_image") if APPS[w.app].packages else calls_hash("baseforge.app"),
    script:
        "../scripts/app_image.py"


rule app_load:
    input:
        archive=paths.app(paths.APP_OCI),
        info=paths.app(paths.APP_INFO),
    output:
        record=paths.app(paths.APP_ENGINE),
    log:
        "logs/load/apps/{app}.log",
    localrule: ENGINE_LOCAL
    params:
        meta=lambda w: APPS[w.app].meta.to_dict(),
        method="oci",
        code=code_hash("load"),
    script:
        "../scripts/load.py"


rule app_build:
    input:
        unpack(app_base_inputs),
        context=app_context,
    output:
        archive=paths.app(paths.APP_OCI),
        info=paths.app(paths.APP_INFO),
        sbom=report(
            paths.app(paths.APP_SBOM),
            caption="report/sbom.rst",
            category="2. SBOM and provenance",
            labels=lambda w: bfreport.document_labels(f"apps/{w.app}", "SBOM (SPDX 2.3)"),
        ),
    log:
        "logs/app/{app}.log",
    wildcard_constraints:
        app=alternation(DOCKERFILE),
    cache: "omit-software"
    localrule: ENGINE_LOCAL  # with the engine rules: buildah builds as root
    params:
        app=lambda w: APPS[w.app].to_dict(),
        code=code_hash("app_build"),
    script:
        "../scripts/app_build.py"
