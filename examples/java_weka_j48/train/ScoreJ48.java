import java.io.BufferedReader;
import java.io.InputStreamReader;
import weka.classifiers.Classifier;
import weka.core.Instance;
import weka.core.Instances;
import weka.core.SerializationHelper;

/**
 * Score CSV rows (the four iris measurements) with the saved J48 model in plain Java, no meshserve:
 *
 * <pre>java -cp /usr/share/java/weka.jar:build/weka-iris-tools.jar ScoreJ48 j48.model header.model &lt; rows.csv</pre>
 *
 * Prints per row: the class probabilities, then the class index, full double precision.
 */
public final class ScoreJ48 {
    public static void main(String[] args) throws Exception {
        Classifier tree = (Classifier) SerializationHelper.read(args[0]);
        Instances header = (Instances) SerializationHelper.read(args[1]);
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
        StringBuilder out = new StringBuilder();
        for (String line; (line = in.readLine()) != null; ) {
            if (line.isBlank()) {
                continue;
            }
            String[] cells = line.split(",");
            double[] values = new double[header.numAttributes()];
            for (int c = 0; c < cells.length; c++) {
                values[c] = Double.parseDouble(cells[c].trim());
            }
            values[header.classIndex()] = Instance.missingValue();
            Instance row = new Instance(1.0, values);
            row.setDataset(header);
            for (double p : tree.distributionForInstance(row)) {
                out.append(p).append(',');
            }
            out.append(tree.classifyInstance(row)).append('\n');
        }
        System.out.print(out);
    }
}
