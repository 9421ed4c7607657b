package com.example.credit;

import io.meshserve.Model;
import io.meshserve.ModelContext;
import io.meshserve.Tensor;
import java.io.IOException;
import java.io.Reader;
import java.nio.file.Files;
import java.util.Map;
import java.util.Properties;

/**
 * Probability that a loan defaults, from a logistic scorecard whose coefficients live in the
 * package (coefficients.properties), written for meshserve's interface (path (a)).
 *
 * <p>Input {@code applicant}: FP64 rows of [income_k, debt_ratio, age, late_payments].
 * Outputs {@code default_probability} (FP64, one per row) and {@code risk_band} (INT32: 0 low,
 * 1 medium, 2 high). A negative income or debt ratio, or an age under 18, is bad input: the model
 * throws IllegalArgumentException and the client gets INVALID_ARGUMENT with this message.
 */
public final class LoanDefaultModel implements Model {
    private static final String[] FEATURES = {"income_k", "debt_ratio", "age", "late_payments"};

    private double intercept;
    private double[] weights;
    private double mediumFrom;
    private double highFrom;

    @Override
    public void load(ModelContext context) throws IOException {
        Properties p = new Properties();
        try (Reader in = Files.newBufferedReader(context.file(context.option("coefficients", "coefficients.properties")))) {
            p.load(in);
        }
        intercept = Double.parseDouble(p.getProperty("intercept"));
        weights = new double[FEATURES.length];
        for (int i = 0; i < FEATURES.length; i++) {
            weights[i] = Double.parseDouble(p.getProperty(FEATURES[i]));
        }
        mediumFrom = Double.parseDouble(context.option("medium_from", "0.2"));
        highFrom = Double.parseDouble(context.option("high_from", "0.5"));
    }

    @Override
    public Map<String, Object> predict(Map<String, Tensor> inputs) {
        Tensor applicant = inputs.get("applicant");
        double[] x = applicant.doubles();
        int rows = applicant.rows();
        int width = applicant.width();
        double[] probability = new double[rows];
        int[] band = new int[rows];
        for (int r = 0; r < rows; r++) {
            int at = r * width;
            check(r, x[at] >= 0, "income_k must be >= 0, got " + x[at]);
            check(r, x[at + 1] >= 0, "debt_ratio must be >= 0, got " + x[at + 1]);
            check(r, x[at + 2] >= 18, "age must be >= 18, got " + x[at + 2]);
            double z = intercept;
            for (int c = 0; c < width; c++) {
                z += weights[c] * x[at + c];
            }
            probability[r] = 1.0 / (1.0 + Math.exp(-z));
            band[r] = probability[r] >= highFrom ? 2 : probability[r] >= mediumFrom ? 1 : 0;
        }
        // Flat primitive arrays: meshserve takes the shapes from the signature.
        return Map.of("default_probability", probability, "risk_band", band);
    }

    private static void check(int row, boolean ok, String problem) {
        if (!ok) {
            throw new IllegalArgumentException("row " + row + ": " + problem);
        }
    }
}
