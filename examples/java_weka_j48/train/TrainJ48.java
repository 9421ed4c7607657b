import java.io.FileReader;
import weka.classifiers.trees.J48;
import weka.core.Instances;
import weka.core.SerializationHelper;

/**
 * Train Weka's J48 decision tree on an ARFF file, the way the team did before meshserve existed,
 * and save it with Weka's own serializer:
 *
 * <pre>java -cp /usr/share/java/weka.jar:build/weka-iris-tools.jar TrainJ48 data/iris.arff .</pre>
 *
 * Writes j48.model (the classifier) and header.model (the attribute definitions without rows,
 * which Weka needs to score a new row).
 */
public final class TrainJ48 {
    public static void main(String[] args) throws Exception {
        Instances data = new Instances(new FileReader(args[0]));
        data.setClassIndex(data.numAttributes() - 1);
        J48 tree = new J48();
        tree.setOptions(new String[] {"-C", "0.25", "-M", "2"});
        tree.buildClassifier(data);
        SerializationHelper.write(args[1] + "/j48.model", tree);
        SerializationHelper.write(args[1] + "/header.model", new Instances(data, 0));
        System.out.println("trained J48 on " + data.numInstances() + " rows of " + args[0]);
    }
}
