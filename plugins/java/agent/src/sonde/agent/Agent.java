/*
 * Agent - the class the JVM calls when sonde loads the agent (dynamic
 * attach: agentmain) or when a test starts a JVM with -javaagent (premain).
 * Everything happens in Core; an exception thrown here is what the attach
 * answer reports as a non-zero result.
 */
package sonde.agent;

import java.lang.instrument.Instrumentation;

public final class Agent {
    private Agent() {
    }

    public static void agentmain(String args, Instrumentation inst) throws Exception {
        Core.start(args, inst);
    }

    public static void premain(String args, Instrumentation inst) throws Exception {
        Core.start(args, inst);
    }
}
