package io.wmsgate.keycloak;

import org.keycloak.events.Event;
import org.keycloak.events.EventListenerProvider;
import org.keycloak.events.admin.AdminEvent;
import org.keycloak.models.AbstractKeycloakTransaction;
import org.keycloak.models.KeycloakSession;

/**
 * Hands each event to the sender only after Keycloak's transaction commits (an event of a
 * rolled-back change is never sent), and never blocks or fails the request that caused it.
 */
public final class WmsEventListenerProvider implements EventListenerProvider {

    private final KeycloakSession session;
    private final EventSender sender;

    /**
     * @param session the request's Keycloak session (its transaction decides when events go)
     * @param sender the shared sender, or null when no receiver is configured (events are ignored)
     */
    public WmsEventListenerProvider(KeycloakSession session, EventSender sender) {
        this.session = session;
        this.sender = sender;
    }

    @Override
    public void onEvent(Event event) {
        if (sender != null) {
            afterCommit(EventDocuments.user(event, userAgent()));
        }
    }

    private String userAgent() {
        try {
            var context = session.getContext();
            var headers = context == null ? null : context.getRequestHeaders();
            String value = headers == null ? null : headers.getHeaderString("User-Agent");
            return value == null || value.length() <= 512 ? value : value.substring(0, 512);
        } catch (RuntimeException e) {
            return null; // no HTTP request behind this event (a background task): nothing to report
        }
    }

    @Override
    public void onEvent(AdminEvent event, boolean includeRepresentation) {
        if (sender != null) {
            afterCommit(EventDocuments.admin(event, includeRepresentation));
        }
    }

    private void afterCommit(String json) {
        session.getTransactionManager().enlistAfterCompletion(new AbstractKeycloakTransaction() {
            @Override
            protected void commitImpl() {
                sender.offer(json);
            }

            @Override
            protected void rollbackImpl() {
                // the change did not happen: nothing to report
            }
        });
    }

    @Override
    public void close() {
        // the sender is shared by the factory and closed with it
    }
}
