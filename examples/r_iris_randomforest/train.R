# Train the iris species classifier (randomForest) on the iris data that ships with R.
# Run from this folder: Rscript --vanilla train.R  (scripts/setup.sh does it when model.rds is missing)
suppressPackageStartupMessages(library(randomForest))
set.seed(20240501)
model <- randomForest(Species ~ Sepal.Length + Sepal.Width + Petal.Length + Petal.Width,
                      data = iris, ntree = 200)
saveRDS(model, "model.rds")
cat(sprintf("trained randomForest on %d rows, OOB error %.3f\n", nrow(iris), tail(model$err.rate[, "OOB"], 1)))
