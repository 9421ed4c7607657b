package io.meshserve;

import java.nio.file.Path;
import java.util.Collections;
import java.util.Map;

/** What a {@link Model} learns about its package when it loads. */
public final class ModelContext {
    private final String name;
    private final String version;
    private final Path directory;
    private final Map<String, String> options;

    public ModelContext(String name, String version, Path directory, Map<String, String> options) {
        this.name = name;
        this.version = version;
        this.directory = directory;
        this.options = Collections.unmodifiableMap(options);
    }

    /** The model name from model.yaml. */
    public String name() {
        return name;
    }

    /** The model version from model.yaml. */
    public String version() {
        return version;
    }

    /** The package directory (the folder holding model.yaml). */
    public Path directory() {
        return directory;
    }

    /** A file of the package, by its path relative to the package directory. */
    public Path file(String relative) {
        return directory.resolve(relative);
    }

    /** The {@code java.options} mapping of model.yaml, values as text. */
    public Map<String, String> options() {
        return options;
    }

    /** One option, or {@code fallback} when model.yaml does not set it. */
    public String option(String key, String fallback) {
        return options.getOrDefault(key, fallback);
    }
}
