# What `snakemake --report report.html` shows beside the files flagged in the stage files (the matrix is
# the smoke reports with their labels, rules/smoketest.smk; SBOMs and provenance, rules/bootstrap.smk):
# two charts. Captions are in rules/report/, next to the rules that name them.


def report_targets():
    return ["results/report/sizes.svg", "results/report/build-time.svg"]


def matrix_labels(path):
    # read when the report is made, from build/ and results/verify.json (baseforge.report)
    from baseforge import report as bfreport

    return bfreport.image_labels(path)


def document_labels(path, document):
    from baseforge import report as bfreport

    return bfreport.document_labels(path, document)


rule report_sizes:
    input:
        images="results/images.json",
    output:
        svg=report(
            "results/report/sizes.svg",
            caption="report/sizes.rst",
            category="3. Charts",
            labels={"chart": "image sizes"},
        ),
    params:
        code=bfconfig.code_hash("charts.py", "report.py", "data/official_sizes.tsv"),
    log:
        "logs/report/sizes.log",
    localrule: True
    script:
        "../scripts/report_sizes.py"


# after the summary, i.e. after every job of the matrix has written its log
rule report_times:
    input:
        images="results/images.json",
    output:
        svg=report(
            "results/report/build-time.svg",
            caption="report/build-time.rst",
            category="3. Charts",
            labels={"chart": "build time per rule"},
        ),
    params:
        logs="logs",
        skip="logs/report",
        code=bfconfig.code_hash("charts.py", "report.py"),
    log:
        "logs/report/build-time.log",
    localrule: True
    script:
        "../scripts/report_times.py"
