package io.meshserve.tools;

import io.meshserve.Model;
import io.meshserve.ModelContext;
import io.meshserve.Tensor;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * Score CSV rows with a {@link Model} in plain Java, without meshserve: the reference a Java team
 * compares served predictions with.
 *
 * <pre>
 * java -cp meshserve-model-api.jar:model.jar io.meshserve.tools.ScoreCsv \
 *     CLASS PACKAGE_DIR INPUT_NAME [key=value ...] &lt; rows.csv
 * </pre>
 *
 * Each CSV line is one row of the FP64 input INPUT_NAME. Prints one line per row: every output in
 * name order, each value with full double precision ({@link Double#toString}), separated by commas.
 */
public final class ScoreCsv {
    private ScoreCsv() {
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 3) {
            System.err.println("usage: ScoreCsv CLASS PACKAGE_DIR INPUT_NAME [key=value ...] < rows.csv");
            System.exit(2);
        }
        Map<String, String> options = new HashMap<>();
        for (int i = 3; i < args.length; i++) {
            String[] kv = args[i].split("=", 2);
            options.put(kv[0], kv.length > 1 ? kv[1] : "");
        }
        List<double[]> rows = new ArrayList<>();
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        for (String line; (line = in.readLine()) != null; ) {
            if (line.isBlank()) {
                continue;
            }
            String[] cells = line.split(",");
            double[] row = new double[cells.length];
            for (int c = 0; c < cells.length; c++) {
                row[c] = Double.parseDouble(cells[c].trim());
            }
            rows.add(row);
        }
        int width = rows.isEmpty() ? 0 : rows.get(0).length;
        double[] flat = new double[rows.size() * width];
        for (int r = 0; r < rows.size(); r++) {
            System.arraycopy(rows.get(r), 0, flat, r * width, width);
        }
        Path dir = Path.of(args[1]).toAbsolutePath();
        try (Model model = (Model) Class.forName(args[0]).getDeclaredConstructor().newInstance()) {
            model.load(new ModelContext(dir.getFileName().toString(), "local", dir, options));
            Map<String, Object> outputs = new TreeMap<>(
                    model.predict(Map.of(args[2], Tensor.of(flat, rows.size(), width))));
            StringBuilder out = new StringBuilder();
            for (int r = 0; r < rows.size(); r++) {
                List<String> cells = new ArrayList<>();
                for (Object value : outputs.values()) {
                    Object data = value instanceof Tensor t ? t.data() : value;
                    int per = java.lang.reflect.Array.getLength(data) / rows.size();
                    for (int k = 0; k < per; k++) {
                        cells.add(String.valueOf(java.lang.reflect.Array.get(data, r * per + k)));
                    }
                }
                out.append(String.join(",", cells)).append('\n');
            }
            System.out.print(out);
        }
    }
}
