package io.wmsgate.keycloak;

import java.net.URI;
import java.time.Duration;
import java.util.logging.Logger;
import org.keycloak.Config;
import org.keycloak.events.EventListenerProvider;
import org.keycloak.events.EventListenerProviderFactory;
import org.keycloak.models.KeycloakSession;
import org.keycloak.models.KeycloakSessionFactory;

/**
 * Event listener {@value #ID}. SPI options (Keycloak's {@code spi-events-listener-wms-gateway-events-*}):
 * {@code url} (the alerting service's event endpoint), {@code secret} (HMAC-SHA256 key),
 * {@code queue-size} (default 10000), {@code timeout-ms} (default 5000) and
 * {@code max-backoff-ms} (default 30000). Without a URL and secret the listener ignores events.
 */
public final class WmsEventListenerProviderFactory implements EventListenerProviderFactory {

    /** The provider id enabled on the realm ({@code eventsListeners}). */
    public static final String ID = "wms-gateway-events";
    private static final Logger LOG = Logger.getLogger(WmsEventListenerProviderFactory.class.getName());

    private EventSender sender;

    @Override
    public EventListenerProvider create(KeycloakSession session) {
        return new WmsEventListenerProvider(session, sender);
    }

    @Override
    public void init(Config.Scope config) {
        String url = config.get("url");
        String secret = config.get("secret");
        if (url == null || url.isBlank() || secret == null || secret.isBlank()) {
            LOG.warning(ID + ": no url/secret configured; events are not sent");
            return;
        }
        sender = new EventSender(URI.create(url), new EventSigner(secret), config.getInt("queue-size", 10000),
                Duration.ofMillis(config.getInt("timeout-ms", 5000)),
                Duration.ofMillis(config.getInt("max-backoff-ms", 30000)));
    }

    @Override
    public void postInit(KeycloakSessionFactory factory) {
        // nothing to wire
    }

    @Override
    public void close() {
        if (sender != null) {
            sender.close();
        }
    }

    @Override
    public String getId() {
        return ID;
    }
}
