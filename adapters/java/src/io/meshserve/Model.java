package io.meshserve;

import java.util.Map;

/**
 * A model that meshserve serves (path (a) of a Java model package).
 *
 * <p>meshserve creates one instance with the public no-argument constructor, calls {@link #load}
 * once, then calls {@link #predict} from several threads at once: an implementation must be
 * thread-safe (read-only state after load is the usual way).
 *
 * <p>Inputs arrive as {@link Tensor}s named as in the signature of {@code model.yaml}, batch along
 * the first dimension, data in a flat row-major primitive array. Return every declared output,
 * either as a {@link Tensor} or, as a fast path, as a flat primitive array whose shape meshserve
 * takes from the signature ({@code -1} becomes the number of rows of the request).
 *
 * <p>Errors: throw {@link IllegalArgumentException} for input the model cannot take; the client
 * gets INVALID_ARGUMENT with the exception class and message. Any other exception becomes INTERNAL.
 */
public interface Model extends AutoCloseable {

    /** Read the model's files. Called once, before any predict. */
    default void load(ModelContext context) throws Exception {
    }

    /** Score one batch of rows; called concurrently from several threads. */
    Map<String, Object> predict(Map<String, Tensor> inputs) throws Exception;

    /** Release what {@link #load} acquired. */
    @Override
    default void close() throws Exception {
    }
}
