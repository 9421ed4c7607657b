# The oracle for the R runtime's tests: score rows the way the R team would in plain R,
# in its own Rscript process, with none of meshserve's code in the path.
# Usage: Rscript --vanilla tests/r_oracle.R MODEL_NAME PACKAGE_DIR ROWS.csv OUT.csv
# Numbers are written with 17 significant digits so they round-trip exactly.
args <- commandArgs(trailingOnly = TRUE)
model_name <- args[[1]]; dir <- args[[2]]; rows_file <- args[[3]]; out_file <- args[[4]]
rows <- read.csv(rows_file, check.names = FALSE, stringsAsFactors = FALSE,
                 colClasses = "character")

scorers <- list(
  "iris-randomforest" = function(dir, rows) {
    suppressPackageStartupMessages(library(randomForest))
    model <- readRDS(file.path(dir, "model.rds"))
    source(file.path(dir, "predict.R"))
    for (col in names(rows)) rows[[col]] <- as.numeric(rows[[col]])
    predict_species(model, rows)
  },
  "infert-glm" = function(dir, rows) {
    model <- readRDS(file.path(dir, "model.rds"))
    newdata <- data.frame(
      education = factor(rows$education, levels = levels(infert$education)),
      age = as.numeric(rows$age),
      parity = as.integer(rows$parity),
      induced = as.numeric(rows$induced),
      spontaneous = as.numeric(rows$spontaneous))
    data.frame(probability = predict(model, newdata, type = "response"))
  }
)

result <- scorers[[model_name]](dir, rows)
for (col in names(result)) {
  if (is.numeric(result[[col]])) result[[col]] <- sprintf("%.17g", result[[col]])
}
write.csv(result, out_file, row.names = FALSE)
