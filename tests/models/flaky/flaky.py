import time



def predict(inputs):
    x = inputs["x"]
    if (x[:, 0] == -1).any():
        raise ValueError("negative one is not allowed")
    if (x[:, 0] == -2).any():
        time.sleep(float(x[0, 1]))
    return {"y": x * 2}
