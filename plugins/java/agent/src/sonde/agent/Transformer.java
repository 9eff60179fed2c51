/*
 * Transformer - hands the target JDK classes to Rewriter, when they load
 * and when the agent retransforms them; anything else passes untouched.
 * (No lambdas or streams here: this runs inside class loading.)
 */
package sonde.agent;

import java.lang.instrument.ClassFileTransformer;
import java.security.ProtectionDomain;
import java.util.ArrayList;
import java.util.List;

final class Transformer implements ClassFileTransformer {
    @Override
    public byte[] transform(ClassLoader loader, String name, Class<?> redefining, ProtectionDomain pd,
                            byte[] buf) {
        if (loader != null || name == null || Core.cur == null)
            return null;
        try {
            Rewriter.Target[] all = Core.TARGETS;
            List<Rewriter.Target> mine = new ArrayList<>();
            int[] index = new int[all.length];
            for (int i = 0; i < all.length; i++) {
                if (all[i].cls.equals(name)) {
                    index[mine.size()] = i;
                    mine.add(all[i]);
                }
            }
            if (mine.isEmpty())
                return null;
            String[] done = new String[mine.size()];
            byte[] out = Rewriter.rewrite(buf, mine, done);
            String[] byTarget = new String[all.length];
            for (int j = 0; j < done.length; j++)
                byTarget[index[j]] = done[j];
            Core.transformed(name, byTarget);
            return out;
        } catch (Throwable e) {
            return null;
        }
    }
}
