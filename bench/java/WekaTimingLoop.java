import java.io.FileReader;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import weka.classifiers.Classifier;
import weka.core.Instance;
import weka.core.Instances;
import weka.core.SerializationHelper;

/**
 * The baseline for bench/bench_java.py: the served Weka J48 model called in-process from Java,
 * the same work per request as meshserve does (one row: build the Instance, distribution and class).
 *
 * <pre>java -cp weka.jar:weka-timing-loop.jar WekaTimingLoop j48.model header.model iris.arff SECONDS CONCURRENCY...</pre>
 *
 * Prints one JSON line per concurrency: requests, seconds, throughput and latency percentiles (us).
 */
public final class WekaTimingLoop {
    public static void main(String[] args) throws Exception {
        Classifier tree = (Classifier) SerializationHelper.read(args[0]);
        Instances header = (Instances) SerializationHelper.read(args[1]);
        Instances data = new Instances(new FileReader(args[2]));
        double seconds = Double.parseDouble(args[3]);
        List<double[]> rows = new ArrayList<>();
        for (int i = 0; i < data.numInstances(); i++) {
            double[] v = data.instance(i).toDoubleArray();
            v[header.numAttributes() - 1] = Instance.missingValue();
            rows.add(v);
        }
        run(tree, header, rows, Math.min(1.0, seconds), 1, false); // warm up the JIT
        for (int a = 4; a < args.length; a++) {
            run(tree, header, rows, seconds, Integer.parseInt(args[a]), true);
        }
    }

    static void run(Classifier tree, Instances header, List<double[]> rows, double seconds, int threads, boolean report)
            throws Exception {
        long end = System.nanoTime() + (long) (seconds * 1e9);
        List<long[]> latencies = new ArrayList<>();
        int[] counts = new int[threads];
        CountDownLatch done = new CountDownLatch(threads);
        long start = System.nanoTime();
        for (int t = 0; t < threads; t++) {
            final int id = t;
            final long[] mine = new long[2_000_000];
            latencies.add(mine);
            new Thread(() -> {
                try {
                    int n = 0;
                    double sink = 0;
                    while (System.nanoTime() < end && n < mine.length) {
                        long t0 = System.nanoTime();
                        Instance row = new Instance(1.0, rows.get((n + id) % rows.size()).clone());
                        row.setDataset(header);
                        double[] p = tree.distributionForInstance(row);
                        sink += p[0] + tree.classifyInstance(row);
                        mine[n++] = System.nanoTime() - t0;
                    }
                    counts[id] = n;
                    if (sink == -1) {
                        System.out.println(sink);
                    }
                } catch (Exception e) {
                    throw new RuntimeException(e);
                } finally {
                    done.countDown();
                }
            }).start();
        }
        done.await();
        double elapsed = (System.nanoTime() - start) / 1e9;
        int total = Arrays.stream(counts).sum();
        long[] all = new long[total];
        int at = 0;
        for (int t = 0; t < threads; t++) {
            System.arraycopy(latencies.get(t), 0, all, at, counts[t]);
            at += counts[t];
        }
        Arrays.sort(all);
        if (!report) {
            return;
        }
        System.out.printf("{\"concurrency\": %d, \"requests\": %d, \"seconds\": %.3f, \"throughput\": %.1f, "
                + "\"p50_us\": %.3f, \"p99_us\": %.3f}%n", threads, total, elapsed, total / elapsed,
                all[total / 2] / 1e3, all[(int) (total * 0.99)] / 1e3);
    }
}
