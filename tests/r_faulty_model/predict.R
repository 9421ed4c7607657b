# Scores x * scale, except for inputs that trigger each way an R model can fail.
predict_faulty <- function(model, newdata) {
  x <- newdata$x
  if (any(x < 0)) stop(errorCondition("x must not be negative", class = "invalid_input"))
  if (any(x == 1)) stop("x = 1 is refused by this model")
  if (any(x == 2)) {
    # Unbounded recursion with R's expression limit lifted: only the C stack stops it.
    options(expressions = 500000)
    deeper <- function(n) deeper(n + 1)
    deeper(0)
  }
  if (any(x == 3)) tools::pskill(Sys.getpid(), 11L)  # R itself crashes
  if (any(x == 4)) return(list(oops = "a list is not a prediction"))
  x * model$scale
}
