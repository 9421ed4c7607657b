# Train a logistic regression (glm) on R's infert data: infertility after spontaneous and
# induced abortion, with education as a factor. Run from this folder: Rscript --vanilla train.R
model <- glm(case ~ education + age + parity + induced + spontaneous,
             family = binomial(), data = infert)
saveRDS(model, "model.rds")
cat(sprintf("trained glm on %d rows, AIC %.2f\n", nrow(infert), AIC(model)))
