package io.meshserve;

import java.util.Arrays;

/**
 * A named input or output of a model: a shape and the values in one flat, row-major primitive
 * array. The array type follows the Open Inference Protocol datatype:
 * FP64 {@code double[]}, FP32 {@code float[]}, INT64/UINT32 {@code long[]}, INT32/UINT16 {@code int[]},
 * INT16/UINT8 {@code short[]}, INT8 {@code byte[]}, BOOL {@code boolean[]}, BYTES {@code String[]} (UTF-8).
 */
public final class Tensor {
    private final long[] shape;
    private final Object data;

    public Tensor(long[] shape, Object data) {
        if (data == null || !data.getClass().isArray()) {
            throw new IllegalArgumentException("tensor data must be an array, got " + data);
        }
        long expected = 1;
        for (long d : shape) {
            expected *= d;
        }
        int length = java.lang.reflect.Array.getLength(data);
        if (expected != length) {
            throw new IllegalArgumentException(
                    "shape " + Arrays.toString(shape) + " holds " + expected + " values but the data has " + length);
        }
        this.shape = shape.clone();
        this.data = data;
    }

    public static Tensor of(double[] data, long... shape) {
        return new Tensor(shape, data);
    }

    public static Tensor of(float[] data, long... shape) {
        return new Tensor(shape, data);
    }

    public static Tensor of(long[] data, long... shape) {
        return new Tensor(shape, data);
    }

    public static Tensor of(int[] data, long... shape) {
        return new Tensor(shape, data);
    }

    public static Tensor of(boolean[] data, long... shape) {
        return new Tensor(shape, data);
    }

    public static Tensor of(String[] data, long... shape) {
        return new Tensor(shape, data);
    }

    public long[] shape() {
        return shape.clone();
    }

    /** The size of the first dimension: the number of rows in the batch. */
    public int rows() {
        return shape.length == 0 ? 1 : (int) shape[0];
    }

    /** Values per row: the product of every dimension after the first. */
    public int width() {
        long w = 1;
        for (int i = 1; i < shape.length; i++) {
            w *= shape[i];
        }
        return (int) w;
    }

    /** The flat array itself (no copy). */
    public Object data() {
        return data;
    }

    /** The values as {@code double[]}; no copy when the tensor is FP64. */
    public double[] doubles() {
        if (data instanceof double[] d) {
            return d;
        }
        if (data instanceof float[] f) {
            double[] out = new double[f.length];
            for (int i = 0; i < f.length; i++) {
                out[i] = f[i];
            }
            return out;
        }
        if (data instanceof long[] l) {
            return Arrays.stream(l).asDoubleStream().toArray();
        }
        if (data instanceof int[] n) {
            return Arrays.stream(n).asDoubleStream().toArray();
        }
        throw new IllegalArgumentException("tensor holds " + data.getClass().getSimpleName() + ", not numbers");
    }

    public float[] floats() {
        return as(float[].class);
    }

    public long[] longs() {
        return as(long[].class);
    }

    public int[] ints() {
        return as(int[].class);
    }

    public boolean[] booleans() {
        return as(boolean[].class);
    }

    public String[] strings() {
        return as(String[].class);
    }

    /** Row {@code row} as a new {@code double[]} of {@link #width()} values. */
    public double[] row(int row) {
        int w = width();
        return Arrays.copyOfRange(doubles(), row * w, (row + 1) * w);
    }

    private <T> T as(Class<T> type) {
        if (type.isInstance(data)) {
            return type.cast(data);
        }
        throw new IllegalArgumentException(
                "tensor holds " + data.getClass().getSimpleName() + ", not " + type.getSimpleName());
    }

    @Override
    public String toString() {
        return "Tensor" + Arrays.toString(shape) + " of " + data.getClass().getComponentType();
    }
}
