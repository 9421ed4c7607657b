package io.meshserve.legacy;

import java.lang.reflect.Array;
import java.lang.reflect.Constructor;
import java.lang.reflect.Executable;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * Calls legacy methods once per row inside Java, so a batch of rows costs one call from Python
 * instead of several per row. meshserve builds it from the {@code legacy.calls} of model.yaml
 * whose {@code each_row} is true; legacy code itself never sees this class.
 *
 * <p>Thread-safe: the per-row values live in a context of each {@link #run} call; constructors and
 * methods are resolved once per argument-type combination and cached.
 */
public final class RowLoop {

    /** How one argument is made for a row. Equal arguments of several calls share one slot, so an
     * object such as a Weka Instance is built once per row for all of them. */
    public abstract static class Arg {
        final int slot;

        Arg(int slot) {
            this.slot = slot;
        }

        abstract Object make(Context c) throws Exception;

        final Object value(Context c) throws Exception {
            if (slot < 0) {
                return make(c);
            }
            Object v = c.memo[slot];
            if (v == null) {
                v = make(c);
                c.memo[slot] = v;
            }
            return v;
        }
    }

    static final class Context {
        final Object[] inputs;
        final int[] widths;
        final Object[] memo;
        int row;

        Context(Object[] inputs, int[] widths, int slots) {
            this.inputs = inputs;
            this.widths = widths;
            this.memo = new Object[slots];
        }
    }

    /** A value fixed at load (a number, a String, an object built at load). */
    public static Arg constant(Object value) {
        return new Arg(-1) {
            Object make(Context c) {
                return value;
            }
        };
    }

    /** Row {@code c.row} of input {@code input} as a new primitive array, then {@code append}
     * (only for double inputs; Weka wants a slot for the class value). */
    public static Arg row(int slot, int input, double[] append) {
        return new Arg(slot) {
            Object make(Context c) {
                Object flat = c.inputs[input];
                int w = c.widths[input];
                int extra = append == null ? 0 : append.length;
                Object out = Array.newInstance(flat.getClass().getComponentType(), w + extra);
                System.arraycopy(flat, c.row * w, out, 0, w);
                if (extra > 0) {
                    System.arraycopy(append, 0, out, w, extra);
                }
                return out;
            }
        };
    }

    /** {@code new type(args...)}, then each {@code thenMethods[i](thenArgs[i]...)} on it. */
    public static Arg construct(int slot, Class<?> type, Arg[] args, String[] thenMethods, Arg[][] thenArgs) {
        Invoker create = new Invoker(type, null, args.length);
        Invoker[] then = new Invoker[thenMethods.length];
        for (int i = 0; i < then.length; i++) {
            then[i] = new Invoker(type, thenMethods[i], thenArgs[i].length);
        }
        return new Arg(slot) {
            Object make(Context c) throws Exception {
                Object obj = create.invoke(null, values(args, c));
                for (int i = 0; i < then.length; i++) {
                    then[i].invoke(obj, values(thenArgs[i], c));
                }
                return obj;
            }
        };
    }

    /** {@code type.method(args...)}, a static factory. */
    public static Arg invokeStatic(int slot, Class<?> type, String method, Arg[] args) {
        Invoker call = new Invoker(type, method, args.length);
        return new Arg(slot) {
            Object make(Context c) throws Exception {
                return call.invoke(null, values(args, c));
            }
        };
    }

    private final Object[] targets;
    private final Invoker[] calls;
    private final Arg[][] args;
    private final int slots;

    /**
     * @param targets the object each call is made on, or its Class for a static method
     * @param methods the method name of each call
     * @param args    the arguments of each call
     * @param slots   how many shared argument slots the Args use
     */
    public RowLoop(Object[] targets, String[] methods, Arg[][] args, int slots) {
        this.targets = targets.clone();
        this.calls = new Invoker[targets.length];
        for (int i = 0; i < targets.length; i++) {
            boolean isStatic = targets[i] instanceof Class<?>;
            Class<?> type = isStatic ? (Class<?>) targets[i] : targets[i].getClass();
            calls[i] = new Invoker(type, methods[i], args[i].length);
            if (isStatic) {
                this.targets[i] = null;
            }
        }
        this.args = args;
        this.slots = slots;
    }

    /**
     * Score {@code rows} rows. {@code inputs[k]} is input k as one flat primitive array of
     * {@code rows * widths[k]} values. Returns, per call, its results for all rows in one flat
     * array: double[] for floating-point results (numbers or arrays of them), long[] for integer
     * ones, boolean[] or String[]; array results are laid out row after row.
     */
    public Object[] run(Object[] inputs, int[] widths, int rows) throws Exception {
        Object[][] results = new Object[calls.length][rows];
        for (int r = 0; r < rows; r++) {
            Context c = new Context(inputs, widths, slots);
            c.row = r;
            for (int k = 0; k < calls.length; k++) {
                results[k][r] = calls[k].invoke(targets[k], values(args[k], c));
            }
        }
        Object[] flat = new Object[calls.length];
        for (int k = 0; k < calls.length; k++) {
            flat[k] = flatten(results[k], k);
        }
        return flat;
    }

    static Object[] values(Arg[] args, Context c) throws Exception {
        Object[] out = new Object[args.length];
        for (int i = 0; i < args.length; i++) {
            out[i] = args[i].value(c);
        }
        return out;
    }

    private Object flatten(Object[] perRow, int call) {
        if (perRow.length == 0) {
            return new double[0];
        }
        Object first = perRow[0];
        if (first == null) {
            throw new IllegalStateException("call " + call + " returned null for row 0");
        }
        int per = first.getClass().isArray() ? Array.getLength(first) : 1;
        Class<?> kind = first.getClass().isArray() ? first.getClass().getComponentType() : first.getClass();
        boolean isDouble = kind == double.class || kind == float.class || kind == Double.class || kind == Float.class;
        boolean isLong = kind == long.class || kind == int.class || kind == short.class || kind == byte.class
                || kind == Long.class || kind == Integer.class || kind == Short.class || kind == Byte.class;
        boolean isBoolean = kind == boolean.class || kind == Boolean.class;
        Object out = isDouble ? new double[perRow.length * per] : isLong ? new long[perRow.length * per]
                : isBoolean ? new boolean[perRow.length * per] : new String[perRow.length * per];
        for (int r = 0; r < perRow.length; r++) {
            Object v = perRow[r];
            if (v == null) {
                throw new IllegalStateException("call " + call + " returned null for row " + r);
            }
            int n = v.getClass().isArray() ? Array.getLength(v) : 1;
            if (n != per) {
                throw new IllegalStateException("call " + call + " returned " + n + " values for row " + r
                        + " but " + per + " for row 0");
            }
            for (int i = 0; i < n; i++) {
                Object e = v.getClass().isArray() ? Array.get(v, i) : v;
                int at = r * per + i;
                if (isDouble) {
                    ((double[]) out)[at] = ((Number) e).doubleValue();
                } else if (isLong) {
                    ((long[]) out)[at] = ((Number) e).longValue();
                } else if (isBoolean) {
                    ((boolean[]) out)[at] = (Boolean) e;
                } else {
                    ((String[]) out)[at] = String.valueOf(e);
                }
            }
        }
        return out;
    }

    /** A constructor or method chosen by name, arity and the runtime types of the arguments,
     * resolved on first use and cached for that combination of types. */
    static final class Invoker {
        private final Class<?> type;
        private final String name; // null: constructor
        private final List<Executable> candidates = new ArrayList<>();
        private final Map<List<Class<?>>, Executable> chosen = new java.util.concurrent.ConcurrentHashMap<>();

        Invoker(Class<?> type, String name, int arity) {
            this.type = type;
            this.name = name;
            Executable[] all = name == null ? type.getConstructors() : type.getMethods();
            for (Executable e : all) {
                if (e.getParameterCount() == arity && (name == null || e.getName().equals(name))) {
                    candidates.add(e);
                }
            }
            if (candidates.isEmpty()) {
                throw new IllegalStateException("model.yaml names no public " + describe() + " taking " + arity + " arguments");
            }
        }

        private String describe() {
            return name == null ? "constructor of " + type.getName() : "method " + type.getName() + "." + name;
        }

        Object invoke(Object target, Object[] values) throws Exception {
            List<Class<?>> key = new ArrayList<>(values.length);
            for (Object v : values) {
                key.add(v == null ? null : v.getClass());
            }
            Executable e = chosen.get(key);
            if (e == null) {
                e = choose(values);
                chosen.put(key, e);
            }
            try {
                if (e instanceof Constructor<?> ctor) {
                    return ctor.newInstance(values);
                }
                Method m = (Method) e;
                return m.invoke(Modifier.isStatic(m.getModifiers()) ? null : target, values);
            } catch (InvocationTargetException ex) {
                // The model's own exception, unwrapped, so its class and message reach the client.
                Throwable cause = ex.getCause();
                if (cause instanceof Exception exc) {
                    throw exc;
                }
                if (cause instanceof Error err) {
                    throw err;
                }
                throw ex;
            }
        }

        private Executable choose(Object[] values) {
            Executable best = null;
            int bestScore = -1;
            for (Executable e : candidates) {
                int score = 0;
                Class<?>[] params = e.getParameterTypes();
                boolean fits = true;
                for (int i = 0; i < params.length && fits; i++) {
                    int s = fit(params[i], values[i]);
                    fits = s >= 0;
                    score += s;
                }
                if (fits && score > bestScore) {
                    best = e;
                    bestScore = score;
                }
            }
            if (best == null) {
                List<String> types = new ArrayList<>();
                for (Object v : values) {
                    types.add(v == null ? "null" : v.getClass().getSimpleName());
                }
                throw new IllegalStateException("model.yaml: no public " + describe() + " accepts " + types);
            }
            return best;
        }

        /** -1: does not fit; higher is a closer fit. */
        private static int fit(Class<?> param, Object value) {
            if (value == null) {
                return param.isPrimitive() ? -1 : 1;
            }
            if (!param.isPrimitive()) {
                return param == value.getClass() ? 3 : param.isInstance(value) ? 2 : -1;
            }
            Class<?> boxed = Array.get(Array.newInstance(param, 1), 0).getClass();
            if (boxed == value.getClass()) {
                return 3;
            }
            // Widening a boxed number into a primitive parameter, as Method.invoke allows.
            String order = "Byte Short Integer Long Float Double";
            int from = order.indexOf(value.getClass().getSimpleName());
            int to = order.indexOf(boxed.getSimpleName());
            return value instanceof Number && from >= 0 && to > from ? 1 : -1;
        }
    }
}
