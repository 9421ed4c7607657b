# The iris randomForest served the way an R team would without meshserve: a plumber API.
# Started by bench/bench_r.py: Rscript bench/plumber_iris.R PACKAGE_DIR PORT
# POST /predict with {"rows": [{"Sepal.Length": 5.1, ...}, ...]} -> one record per row.
args <- commandArgs(trailingOnly = TRUE)
package_dir <- args[[1]]; port <- as.integer(args[[2]])
suppressPackageStartupMessages({ library(plumber); library(randomForest) })
model <- readRDS(file.path(package_dir, "model.rds"))
source(file.path(package_dir, "predict.R"))

api <- pr()
api <- pr_post(api, "/predict", function(req) {
  rows <- jsonlite::fromJSON(req$postBody)$rows
  predict_species(model, rows)
}, serializer = serializer_json(digits = NA))
cat(sprintf("plumber ready on 127.0.0.1:%d\n", port))
pr_run(api, host = "127.0.0.1", port = port, docs = FALSE, quiet = TRUE)
