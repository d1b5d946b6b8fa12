# Application images: declarative ones (base + packages + files + cmd) are written by the OCI writer on top
# of the base's archive; Dockerfile ones are built by buildah FROM the base's archive. Both are loaded.


APP_PACKAGE_CODE = ("pack.py", "data", "bootstrap/__init__.py", "bootstrap/mmdebstrap.py", "pkgcache.py")


rule app_image:
    input:
        unpack(app_base_inputs),
        context=app_context,
    output:
        archive="build/apps/{app}.oci.tar",
        info="build/apps/{app}.json",
        sbom="build/apps/{app}.spdx.json",
    wildcard_constraints:
        app=alternation(DECLARATIVE),
    params:
        app=lambda w: APPS[w.app].to_dict(),
        # packages: installed from the sources, keyrings, epoch and cache of the image at the chain's bottom
        root_cell=lambda w: IMAGES[APPS[w.app].root].cell.to_dict() if APPS[w.app].packages else None,
        # pack's rules and mmdebstrap count only for apps that install packages
        code=lambda w: bfconfig.code_hash("app.py", "app_packages.py", "layers.py", "manifest.py", "oci.py", "spec.py",
                                          "run.py", *(APP_PACKAGE_CODE if APPS[w.app].packages else ())),
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
        archive="build/apps/{app}.oci.tar",
        info="build/apps/{app}.json",
        sbom="build/apps/{app}.spdx.json",
    wildcard_constraints:
        app=alternation(DOCKERFILE),
    params:
        app=lambda w: APPS[w.app].to_dict(),
        code=bfconfig.code_hash("buildah.py", "appgraph.py", "app_packages.py", "manifest.py", "oci.py", "spec.py", "run.py"),
    log:
        "logs/app/{app}.log",
    cache: "omit-software"
    script:
        "../scripts/app_build.py"
